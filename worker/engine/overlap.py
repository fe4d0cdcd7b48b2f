"""Overlapping mate bases (-O / -M) of the left-most mate of a same-chromosome pair, as intervals.

Called only when -O or -M is given, so a -C or capture run never pays for the call.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from worker.engine.bamfields import _aux_find, _parse_mc, _u32
from worker.engine.layout import OVERLAP_POS


@njit(cache=True, nogil=True)
def overlap_intervals(buf, pos, mpos, n_cig, cig_off, aux_off, rec_end, overlap, scratch):
    """Fill scratch[4] / scratch[5] with the reference intervals to skip; return how many."""
    rstart = scratch[0]
    rend = scratch[1]
    mstart = scratch[2]
    mend = scratch[3]
    ivs = scratch[4]
    ive = scratch[5]
    nscr = rstart.shape[0]
    n_iv = 0
    # bam_endpos: reference length of M/D/N/=/X, at least 1
    rlen = np.int64(0)
    for ci in range(n_cig):
        c = _u32(buf, cig_off + 4 * ci)
        op = c & 0xF
        if op == 0 or op == 2 or op == 3 or op == 7 or op == 8:
            rlen += c >> 4
    if rlen == 0:
        rlen = 1
    endpos = pos + rlen
    if mpos < endpos:
        if overlap == OVERLAP_POS:
            ivs[0] = mpos
            ive[0] = endpos
            n_iv = 1
        else:
            t = _aux_find(buf, aux_off, rec_end, 77, 67)  # MC
            if t >= 0:
                nm_b = _parse_mc(buf, t, rec_end, mstart, mend, mpos)
                if nm_b > 0:
                    nr = 0
                    ref = pos
                    for ci in range(n_cig):
                        c = _u32(buf, cig_off + 4 * ci)
                        op = c & 0xF
                        ln = c >> 4
                        if op == 0 or op == 7 or op == 8:
                            if nr < nscr:
                                rstart[nr] = ref
                                rend[nr] = ref + ln
                                nr += 1
                            ref += ln
                        elif op == 2 or op == 3:
                            ref += ln
                    i = 0
                    j = 0
                    while i < nr and j < nm_b:
                        s0 = rstart[i] if rstart[i] > mstart[j] else mstart[j]
                        e0 = rend[i] if rend[i] < mend[j] else mend[j]
                        if s0 < e0 and n_iv < nscr:
                            ivs[n_iv] = s0
                            ive[n_iv] = e0
                            n_iv += 1
                        # alignstats moves the pointer whose block *starts* first (not
                        # ends first), so it can miss later intersections; golden -M runs
                        # confirm this walk.
                        if rstart[i] < mstart[j]:
                            i += 1
                        else:
                            j += 1
    return n_iv
