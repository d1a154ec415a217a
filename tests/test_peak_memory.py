"""The per-stage peak memory the study records (pipeline.reset_peak_memory / peak_memory_mib)."""

import numpy as np

from synthclone.pipeline import peak_memory_mib, reset_peak_memory


def test_a_stage_peak_sees_the_stage_allocation_and_the_next_stage_forgets_it():
    mode = reset_peak_memory()
    quiet = peak_memory_mib()
    block = np.ones(300 * 2**20, dtype=np.uint8)  # 300 MiB, touched
    big = peak_memory_mib()
    del block
    if mode == "stage":  # Linux, where clear_refs takes effect
        assert big - quiet > 250  # the allocation is seen
        assert reset_peak_memory() == "stage"
        assert peak_memory_mib() < big - 250  # and forgotten by the next stage's reading
    else:  # the peak since the process started: never below what is resident with the block
        assert mode == "run so far"
        assert big >= quiet


def _fake_proc(tmp_path, hwm_kib, rss_kib):
    (tmp_path / "clear_refs").write_text("")
    (tmp_path / "status").write_text(f"Name:\tpython\nVmPeak:\t9 kB\nVmHWM:\t{hwm_kib} kB\nVmRSS:\t{rss_kib} kB\n")
    return tmp_path


def test_a_reset_the_kernel_ignores_is_reported_as_the_run_so_far(tmp_path):
    # CI's machine took the write to clear_refs and kept the old peak (2,376 MiB before and after a
    # 300 MiB allocation): such a reading is the run's peak, and the study must say so.
    assert reset_peak_memory(_fake_proc(tmp_path, 2_433_000, 1_100_000)) == "run so far"
    assert reset_peak_memory(_fake_proc(tmp_path, 1_100_400, 1_100_000)) == "stage"
    assert peak_memory_mib(tmp_path) == round(1_100_400 / 1024, 1)
    assert reset_peak_memory(tmp_path / "missing") == "run so far"
