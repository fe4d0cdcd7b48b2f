"""Process settings the engine makes once, at start, before the run allocates: glibc malloc thresholds.

With glibc's defaults the mmap threshold adapts to the largest block freed so far and the heap is trimmed
whenever more than twice that is free at its top: a run that allocates and frees a 256 KiB chunk per step
then keeps handing pages back to the kernel and faulting them in again. On case e that was ~0.1-0.15 s of
system time of a 1.4 s run, and how much depended on unrelated start-up order (the working directory
changed it). Fixed thresholds - heap for anything under 32 MiB, trimmed only past 128 MiB free - make the
chunk buffers reuse warm pages; large arrays (depth, > 32 MiB) are still mapped and unmapped on their own.
Elsewhere than glibc nothing changes but speed. (numpy's OpenBLAS threads are capped before the engine
starts, by the worker: worker/cpus.py.)
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 128 << 20


def tune_malloc() -> bool:
    """Set the thresholds; True when glibc accepted both."""
    try:
        # the process's own symbols include libc's (ctypes.util.find_library would cost 5 ms of imports)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def prepare() -> None:
    """Everything above; call before the run starts."""
    tune_malloc()
