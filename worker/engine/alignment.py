"""Per-record alignment, pair and insert-size counters, for one unfiltered record."""

from __future__ import annotations

import numpy as np
from numba import njit

from worker.engine.bamfields import _aux_find, _aux_int, _u32
from worker.engine.layout import (
    A_B_ALIGNED,
    A_B_AQP,
    A_B_DEL,
    A_B_DUP,
    A_B_INS,
    A_B_MAPPED,
    A_B_MATCHED,
    A_B_MISM,
    A_B_PERFECT,
    A_B_SOFT,
    A_B_TOTAL,
    A_B_UNMAPPED,
    A_Q20,
    A_Q30,
    A_R_AQP,
    A_R_DUP,
    A_R_MAPPED,
    A_R_PERFECT,
    A_R_SOFT,
    A_R_TOTAL,
    A_R_UNMAPPED,
    C_CHIM_DEN,
    C_CHIM_NUM,
    C_PAIRS_R2,
    C_R1_UNPAIRED,
    C_R2_UNPAIRED,
    C_SAME_CHR,
    C_TOTAL_PAIRS,
    C_UNPAIRED,
    F_DUP,
    F_MUNMAP,
    F_PAIRED,
    F_PROPER,
    F_QCFAIL,
    F_READ1,
    F_READ2,
    F_SECONDARY,
    F_SUPP,
    F_UNMAP,
    INS_HIST_SIZE,
    LEN_HIST_SIZE,
    OV_KIND_INSERT,
    S_OV_N,
)


# inlined into process_records: a call per record would cost more than the work
@njit(cache=True, inline="always")
def count_alignment(
    buf,
    flag,
    tid,
    mtid,
    l_seq,
    tlen,
    n_cig,
    cig_off,
    qual_off,
    aux_off,
    rec_end,
    counts,
    aln,
    len_hist,
    ins_hist,
    ov,
    state,
):
    unmapped = (flag & F_UNMAP) != 0
    g2 = -1
    if flag & F_READ1:
        g2 = 1
    elif flag & F_READ2:
        g2 = 2
    aln[0, A_R_TOTAL] += 1
    aln[0, A_B_TOTAL] += l_seq
    if g2 > 0:
        aln[g2, A_R_TOTAL] += 1
        aln[g2, A_B_TOTAL] += l_seq
    if unmapped:
        aln[0, A_R_UNMAPPED] += 1
        aln[0, A_B_UNMAPPED] += l_seq
        if g2 > 0:
            aln[g2, A_R_UNMAPPED] += 1
            aln[g2, A_B_UNMAPPED] += l_seq
    else:
        aln[0, A_R_MAPPED] += 1
        aln[0, A_B_MAPPED] += l_seq
        if g2 > 0:
            aln[g2, A_R_MAPPED] += 1
            aln[g2, A_B_MAPPED] += l_seq
        if (flag & (F_SECONDARY | F_QCFAIL)) == 0:
            is_dup = (flag & F_DUP) != 0
            m = np.int64(0)
            ins = np.int64(0)
            dl = np.int64(0)
            sc = np.int64(0)
            eq = np.int64(0)
            xx = np.int64(0)
            q20 = np.int64(0)
            q30 = np.int64(0)
            p = np.int64(0)
            for ci in range(n_cig):
                c = _u32(buf, cig_off + 4 * ci)
                op = c & 0xF
                ln = c >> 4
                if op == 0 or op == 1 or op == 7 or op == 8:
                    if op == 0:
                        m += ln
                    elif op == 1:
                        ins += ln
                    elif op == 7:
                        eq += ln
                    else:
                        xx += ln
                    qs = qual_off + p
                    qe = qs + ln
                    if qe > rec_end:
                        qe = rec_end
                    for k in range(qs, qe):  # branch-free so LLVM vectorises it
                        qv = buf[k]
                        q20 += qv >= 20
                        q30 += qv >= 30
                    p += ln
                elif op == 2:
                    dl += ln
                elif op == 4:
                    sc += ln
                    p += ln
            t = _aux_find(buf, aux_off, rec_end, 78, 77)  # NM
            if t >= 0:
                nm = _aux_int(buf, t, rec_end, 0)
                mism = nm - dl
                match = m - mism
            else:
                mism = xx
                match = m - xx if m > eq else eq
            aligned = l_seq - sc
            perfect = (mism + dl + ins) == 0
            # aligned read length: int32 value used as uint64 key
            alen = aligned & 0xFFFFFFFF
            if alen >= 0x80000000:
                alen -= 0x100000000
            for g in (0, g2):
                if g < 0:
                    continue
                aln[g, A_R_AQP] += 1
                aln[g, A_B_AQP] += l_seq
                if is_dup:
                    aln[g, A_R_DUP] += 1
                    aln[g, A_B_DUP] += l_seq
                aln[g, A_B_ALIGNED] += aligned
                aln[g, A_B_MATCHED] += match
                aln[g, A_B_MISM] += mism
                aln[g, A_B_INS] += ins
                aln[g, A_B_DEL] += dl
                if sc > 0:
                    aln[g, A_R_SOFT] += 1
                    aln[g, A_B_SOFT] += sc
                if perfect:
                    aln[g, A_R_PERFECT] += 1
                    aln[g, A_B_PERFECT] += aligned
                aln[g, A_Q20] += q20
                aln[g, A_Q30] += q30
                if 0 <= alen < LEN_HIST_SIZE:
                    len_hist[g, alen] += 1
                else:
                    n = state[S_OV_N]
                    ov[n, 0] = g
                    ov[n, 1] = alen
                    state[S_OV_N] = n + 1

    # pair statistics: paired records without READ1
    if (flag & F_PAIRED) and not (flag & F_READ1):
        if flag & F_READ2:
            counts[C_PAIRS_R2] += 1
        munmap = (flag & F_MUNMAP) != 0
        if unmapped and munmap:
            counts[C_UNPAIRED] += 1
        elif unmapped:
            counts[C_R1_UNPAIRED] += 1
        elif munmap:
            counts[C_R2_UNPAIRED] += 1
        else:
            counts[C_TOTAL_PAIRS] += 1
            if tid == mtid:
                counts[C_SAME_CHR] += 1
    if (flag & (F_UNMAP | F_SECONDARY | F_QCFAIL | F_DUP)) == 0:
        counts[C_CHIM_DEN] += 1
        if (flag & (F_PROPER | F_MUNMAP)) == 0:
            counts[C_CHIM_NUM] += 1
    # insert size
    if (
        (flag & (F_PAIRED | F_PROPER)) == (F_PAIRED | F_PROPER)
        and (flag & (F_READ1 | F_SECONDARY | F_SUPP | F_UNMAP | F_MUNMAP | F_DUP)) == 0
        and tid == mtid
    ):
        isz = tlen if tlen >= 0 else -tlen
        if isz < INS_HIST_SIZE:
            ins_hist[isz] += 1
        else:
            n = state[S_OV_N]
            ov[n, 0] = OV_KIND_INSERT
            ov[n, 1] = isz
            state[S_OV_N] = n + 1
