"""Keep glibc's malloc from handing large freed blocks back to the kernel, in synthclone's own processes.

Batched image work allocates and frees multi-megabyte tensors at a high rate (a corruption's
intermediates for a few 224-px images are 0.6-2 MB each; a batch of 64 is 38.5 MB). By default glibc
serves blocks above a dynamic threshold (at most 32 MB) with a fresh ``mmap`` and returns freed memory
at the top of its heap once more than twice that threshold is free, so the next batch's tensors fault
their pages in, zeroed, again. :func:`retain_freed_memory` raises the mmap threshold to 256 MB, the
trim threshold to 512 MB and the top pad to 64 MB: blocks up to 256 MB come from the heap and freed
memory stays mapped for the next one. (A small allocation can take the front of a freed block, so the
next batch of the same size goes to the heap's top and faults again; after a few batches the heap holds
spare blocks: in 8-batch runs of a 38.5 MB batch here, some batches of the first six faulted every page
and a later one none.) Measured on the corruptions at 224 px, batch 64, one thread
(AMD EPYC, benchmarks/RESULTS.md section 1): 1.2-2x the images/s of the element-wise ones (contrast,
brightness), less for the filters. The cost: the process keeps up to 512 MB it no longer uses.

The CLI calls it once at start; importing synthclone changes nothing (a library must not retune its
host's allocator), so a program that drives the library itself may call it. Elsewhere than glibc it
does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h
SETTINGS = {_M_MMAP_THRESHOLD: 256 << 20, _M_TRIM_THRESHOLD: 512 << 20, _M_TOP_PAD: 64 << 20}


@functools.lru_cache(maxsize=1)
def retain_freed_memory() -> bool:
    """Apply :data:`SETTINGS` with ``mallopt`` (once per process); True where glibc took all three."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS.items())
