"""Histogram statistics exactly as alignstats computes them (ALIGNSTATS.md §4.9).

Sums are uint64 in alignstats, so they are reduced modulo 2**64 here; the arithmetic on them is in C
doubles, which Python floats reproduce operation by operation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

U64 = (1 << 64) - 1


@dataclass(frozen=True)
class HistStats:
    mean: float
    median: int
    mode: int
    sd: float


def _u64_to_double(v: int) -> float:
    return float(v & U64)


def hist_stats(items: list[tuple[int, int]], mid: int | None = None) -> HistStats:
    """Statistics of (value, count) pairs, ascending by value.

    mid: the cumulative count at which the median is taken (default: half the observations). Capture
    coverage passes BasesOnTarget / 2 although overlapping targets put more entries in the histogram
    (Q12); the mean and SD always use the histogram's own count.
    """
    k = sum(c for _, c in items)
    if mid is None:
        mid = k // 2
    if k == 0:
        return HistStats(0.0, 0, 0, 0.0)
    s = 0
    sq = 0
    best_v = 0
    best_c = -1
    median = None
    cum = 0
    for v, c in items:
        vv = v & U64
        s = (s + vv * c) & U64
        sq = (sq + vv * vv * c) & U64
        if c > best_c:
            best_c = c
            best_v = vv
        cum += c
        if median is None and cum >= mid:
            median = vv
    if median is None:
        median = 0
    ds = _u64_to_double(s)
    dk = float(k)
    mean = ds / dk
    if k > 1:
        var = (_u64_to_double(sq) - ds * (ds / dk)) / (dk - 1.0)
        # sqrt of a negative variance (uint64 sums that wrapped): x86-64's sqrtsd returns the default
        # NaN, whose sign bit is set, and glibc prints it as "-nan" (negative aligned read lengths: a
        # SEQ '*' record with soft clips; found by the differential test)
        sd = math.sqrt(var) if var >= 0 else -math.nan
    else:
        sd = 0.0
    return HistStats(mean, median, best_v, sd)
