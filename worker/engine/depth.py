"""Per-chromosome work on the depth array: target state bits, histograms, target tally, high-coverage scan."""

from __future__ import annotations

import numpy as np
from numba import njit

from worker.engine.layout import DEPTH_MASK, STATE_BUFFER, STATE_SHIFT, STATE_TARGET


@njit(cache=True, nogil=True)
def prefix_sum(depth, length):
    """Difference array -> depths over [0, length), in place (uint32 wrap-around makes -1 exact)."""
    run = np.uint32(0)
    for p in range(length):
        run += depth[p]
        depth[p] = run


@njit(cache=True, nogil=True)
def set_target_bits(depth, length, tstart, tend):
    """Set buffer then target state bits for each target; return (bases on target, on buffer)."""
    for i in range(tstart.shape[0]):
        s = tstart[i]
        e = tend[i]
        bs = s - 100 if s > 100 else 0
        be = e + 101 if e + 101 < length else length
        for p in range(bs, be + 1):
            depth[p] |= np.uint32(STATE_BUFFER << STATE_SHIFT)
        for p in range(s, e + 1):
            depth[p] |= np.uint32(STATE_TARGET << STATE_SHIFT)
    return count_states(depth, 0, length - 1)


@njit(cache=True, nogil=True)
def count_states(depth, s, e):
    """Positions in [s, e] with target / buffer state."""
    on_t = 0
    on_b = 0
    for p in range(s, e + 1):
        st = depth[p] >> STATE_SHIFT
        if st == STATE_TARGET:
            on_t += 1
        elif st == STATE_BUFFER:
            on_b += 1
    return on_t, on_b


@njit(cache=True, nogil=True)
def depth_histogram(depth, s, e, hist):
    """hist[d] += 1 for each position in [s, e) (depth bits only); returns False if hist is too small."""
    n = hist.shape[0]
    for p in range(s, e):
        d = depth[p] & DEPTH_MASK
        if d >= n:
            return False
    for p in range(s, e):
        hist[depth[p] & DEPTH_MASK] += 1
    return True


@njit(cache=True, nogil=True)
def max_depth(depth, s, e):
    mx = 0
    for p in range(s, e):
        d = depth[p] & DEPTH_MASK
        if d > mx:
            mx = d
    return mx


@njit(cache=True, nogil=True)
def target_tally(depth, length, tstart, tend, hist):
    """Histogram over target positions (overlaps counted twice, Q12); returns (hit, buffer-hit)."""
    hit = 0
    bhit = 0
    for i in range(tstart.shape[0]):
        s = tstart[i]
        e = tend[i]
        any_cov = False
        for p in range(s, e + 1):
            d = depth[p] & DEPTH_MASK
            hist[d] += 1
            if d > 0:
                any_cov = True
        if any_cov:
            hit += 1
            continue
        bs = s - 100 if s > 100 else 0
        # the tool's left buffer scan stops at the contig's last position: for a target starting at or
        # past the end it never looks at [length - 1, s) (CapTargetBuffersHit)
        bend = s if s < length else length - 1
        found = False
        for p in range(bs, bend):
            if depth[p] & DEPTH_MASK:
                found = True
                break
        if not found:
            be = e + 101 if e + 101 < length - 1 else length - 1
            for p in range(e + 1, be):
                if depth[p] & DEPTH_MASK:
                    found = True
                    break
        if found:
            bhit += 1
    return hit, bhit


@njit(cache=True, nogil=True)
def _scan(depth, a, b):
    hits = 0
    p = a
    while p <= b:
        if depth[p] >= 20:
            hits += 1
            while p <= b and depth[p] != 0:
                p += 1
        p += 1
    return hits


@njit(cache=True, nogil=True)
def _scan_to_end(depth, a, length):
    """_scan over [a, length - 1]; also whether index `length` would be tested for a new hit."""
    if a > length:
        return 0, False
    hits = 0
    p = a
    while p <= length - 1:
        if depth[p] >= 20:
            hits += 1
            while p <= length - 1 and depth[p] != 0:
                p += 1
            if p > length - 1:
                return hits, False  # inside a high stretch when reaching `length`: no new hit there
        p += 1
    return hits, p == length


@njit(cache=True, nogil=True)
def high_coverage_non_target(depth, length, tstart, tend):
    """Count high-coverage stretches more than 500 bp away from targets, on raw words.

    The final gap runs to index `length` inclusive, one past the chromosome (Q9). That word is stale
    data from earlier chromosomes, so it is left to the caller: returns (hits before `length`, whether
    `length` is tested), and the caller adds one hit if so and the word there is >= 20.
    """
    hits = 0
    prev_end = -501
    for i in range(tstart.shape[0]):
        hits += _scan(depth, prev_end + 501, tstart[i] - 501)
        prev_end = tend[i]
    h, tail = _scan_to_end(depth, prev_end + 501, length)
    return hits + h, tail
