"""How the engine's memory is backed: glibc malloc thresholds at start, 4 KiB pages for the depth array.

glibc's malloc thresholds. With the defaults the mmap threshold adapts to the largest block freed so far
and the heap is trimmed whenever more than twice that is free at its top: a run that allocates and frees
a 256 KiB chunk per step then keeps handing pages back to the kernel and faulting them in again. On case e
that was ~0.1-0.15 s of system time of a 1.4 s run, and how much depended on unrelated start-up order (the
working directory changed it). Fixed thresholds - heap for anything under 32 MiB, trimmed only past 128
MiB free - make the chunk buffers reuse warm pages; large arrays (depth, > 32 MiB) are still mapped and
unmapped on their own.

The depth array (4 B per base of the longest contig: 200 MB for 50 Mbp, 1 GB for a human chr1). numpy
advises transparent huge pages for large arrays, and where THP is in `madvise` mode (common, and the
kernel default of many distributions) the first touch of each 2 MiB then waits for the kernel to compact
memory into a huge page: 0.6-0.8 s of system time per run on a 50 Mbp genome on this host, varying from
run to run with fragmentation, against 0.1 s with 4 KiB pages and the same user time (the depth walk is
sequential, the TLB does not notice). So the depth array asks for normal pages.

Best effort: elsewhere than Linux/glibc nothing changes but speed. (numpy's OpenBLAS threads are capped
before the engine starts, by the worker: worker/cpus.py.)
"""

from __future__ import annotations

import ctypes

import numpy as np

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 128 << 20
MADV_NOHUGEPAGE = 15
PAGE = 4096
# the process's own symbols include libc's (ctypes.util.find_library would cost 5 ms of imports)
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not a POSIX dynamic loader
    _LIBC = None


def tune_malloc() -> bool:
    """Set the thresholds; True when glibc accepted both."""
    mallopt = getattr(_LIBC, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def small_pages(array: np.ndarray) -> bool:
    """Ask for 4 KiB pages over the whole pages inside `array` (call before touching it); True when the
    kernel accepted. Arrays under 4 MiB are left alone (no huge page would be worth the call)."""
    madvise = getattr(_LIBC, "madvise", None)
    if madvise is None or array.nbytes < 1 << 22:
        return False
    start = (array.ctypes.data + PAGE - 1) & ~(PAGE - 1)
    end = (array.ctypes.data + array.nbytes) & ~(PAGE - 1)
    if end <= start:
        return False
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    madvise.restype = ctypes.c_int
    return madvise(start, end - start, MADV_NOHUGEPAGE) == 0
