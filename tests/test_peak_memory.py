"""The per-stage peak memory the study records (pipeline.reset_peak_memory / peak_memory_mib)."""

import mmap

import numpy as np

from synthclone.pipeline import _reset_takes_effect, peak_memory_mib, reset_peak_memory


def test_a_stage_peak_sees_the_stage_allocation_and_the_next_stage_forgets_it():
    mode = reset_peak_memory()
    quiet = peak_memory_mib()
    block = mmap.mmap(-1, 300 * 2**20)  # fresh pages, not memory malloc already holds
    np.frombuffer(block, dtype=np.uint8)[:] = 1  # 300 MiB, touched
    big = peak_memory_mib()
    block.close()
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


def _kib(hwm_mib, rss_mib):
    return {"VmHWM": hwm_mib * 1024, "VmRSS": rss_mib * 1024}


def test_the_reset_is_trusted_only_where_the_peak_remembers_and_forgets_the_probe_block():
    # before the probe, after touching and releasing 64 MiB, after the second reset
    linux = _kib(2400, 2400), _kib(2464, 2400), _kib(2401, 2400)
    assert _reset_takes_effect(*linux)
    # CI's sandbox: the peak did not follow a 300 MiB allocation (2,429.6 MiB before and after)
    lagging = _kib(2400, 2400), _kib(2400, 2400), _kib(2400, 2400)
    assert not _reset_takes_effect(*lagging)
    ignored = _kib(2400, 2400), _kib(2464, 2400), _kib(2464, 2400)  # the write taken, the peak kept
    assert not _reset_takes_effect(*ignored)


def test_a_kernel_whose_peak_does_not_move_gives_the_run_so_far_and_the_reading_is_never_below_resident(tmp_path):
    # a static status file is a kernel whose peak ignores the probe block
    assert reset_peak_memory(_fake_proc(tmp_path, 1_100_400, 1_100_000)) == "run so far"
    assert peak_memory_mib(tmp_path) == round(1_100_400 / 1024, 1)
    _fake_proc(tmp_path, 1_000_000, 1_100_000)  # a high-water mark that lags the resident size
    assert peak_memory_mib(tmp_path) == round(1_100_000 / 1024, 1)
    assert reset_peak_memory(tmp_path / "missing") == "run so far"
