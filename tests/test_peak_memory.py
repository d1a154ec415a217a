"""The per-stage peak memory the study records (pipeline.reset_peak_memory / peak_memory_mib)."""

import numpy as np

from synthclone.pipeline import peak_memory_mib, reset_peak_memory


def test_peak_is_reset_at_a_stage_start_and_sees_a_stage_allocation():
    assert reset_peak_memory() == "stage"  # Linux: /proc/self/clear_refs
    quiet = peak_memory_mib()
    block = np.ones(300 * 2**20, dtype=np.uint8)  # 300 MiB, touched
    big = peak_memory_mib()
    del block
    assert big - quiet > 250  # the allocation is seen
    assert reset_peak_memory() == "stage"
    assert peak_memory_mib() < big - 250  # and forgotten by the next stage's reading
