"""The per-record kernel over raw (decompressed) BAM records: record checks, filters, counters, depth walk.

The driver (`engine.py`) feeds a buffer of concatenated BAM records (the BAM on-disk layout after BGZF
decompression, header stripped). `process_records` walks the buffer and updates plain integer arrays;
it stops and hands control back at a chromosome change (the driver tallies the finished chromosome with
numpy and prepares the next one), when the overflow list for rare out-of-range histogram values is
nearly full, or when the buffer ends in the middle of a record.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# counters by module attribute (numba reads them as compile-time constants): fewer import lines
from worker.engine import layout as L
from worker.engine.bamfields import _aux_find, _aux_int, _i32, _u16, _u32
from worker.engine.layout import (
    BAD_CIGAR,
    BAD_MTID,
    BAD_NAME,
    BAD_RECORD,
    BAD_SIZES,
    BAD_TID,
    CHROM_CHANGE,
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
    NEED_MORE,
    OV_CAPACITY,
    OV_KIND_INSERT,
    OVERFLOW_FULL,
    OVERLAP_NONE,
    P_DEPTH_DIFF,
    P_DO_ALN,
    P_DO_CAP,
    P_DO_COV,
    P_EXCL_FLAGS,
    P_KEEP_DUPS,
    P_MIN_BASEQ,
    P_MINQ,
    P_N_REF,
    P_OVERLAP,
    P_REQ_FLAGS,
    P_SECTION,
    S_BAD_KIND,
    S_CUR_LEN,
    S_CUR_TID,
    S_LAST_POS,
    S_LAST_TID,
    S_NEW_TID,
    S_ORD_TID,
    S_OV_N,
    S_SEC_LEFT,
    S_WARN_CUR,
    S_WARN_KIND,
    S_WARN_PREV,
    S_WARN_TID,
    S_WARNED,
    STATE_BUFFER,
    STATE_SHIFT,
    STATE_TARGET,
)
from worker.engine.overlap import overlap_intervals


@njit(cache=True, nogil=True)
def process_records(
    buf,
    start,
    end,
    params,
    state,
    counts,
    aln,
    len_hist,
    ins_hist,
    ov,
    depth,
    scratch,
):
    """Process complete records in buf[start:end]; return (status, offset)."""
    minq = params[P_MINQ]
    req = params[P_REQ_FLAGS]
    excl = params[P_EXCL_FLAGS]
    minbq = params[P_MIN_BASEQ]
    do_aln = params[P_DO_ALN] != 0
    do_cov = params[P_DO_COV] != 0
    do_cap = params[P_DO_CAP] != 0
    keep_dups = params[P_KEEP_DUPS] != 0
    depth_diff = params[P_DEPTH_DIFF] != 0
    overlap = params[P_OVERLAP]
    ivs = scratch[4]
    ive = scratch[5]

    o = start
    while True:
        if o + 4 > end:
            return NEED_MORE, o
        bs = _i32(buf, o)
        if bs < 32:
            state[S_BAD_KIND] = BAD_SIZES
            return BAD_RECORD, o
        rec_end = o + 4 + bs
        if rec_end > end:
            return NEED_MORE, o
        # HTSlib (bam_read1, then sam_read1 with the header) refuses a record before alignstats sees it;
        # all of its checks run here, before anything (even a chromosome change) looks at the record.
        tid = _i32(buf, o + 4)
        pos = _i32(buf, o + 8)
        l_rn = np.int64(buf[o + 12])
        mapq = np.int64(buf[o + 13])
        n_cig = _u16(buf, o + 16)
        flag = _u16(buf, o + 18)
        l_seq = _i32(buf, o + 20)
        mtid = _i32(buf, o + 24)
        mpos = _i32(buf, o + 28)
        tlen = _i32(buf, o + 32)
        cig_off = o + 36 + l_rn
        seq_off = cig_off + 4 * n_cig
        qual_off = seq_off + (l_seq + 1) // 2
        aux_off = qual_off + l_seq
        if l_seq < 0 or aux_off > rec_end:
            state[S_BAD_KIND] = BAD_SIZES
            return BAD_RECORD, o
        if l_rn == 0:
            state[S_BAD_KIND] = BAD_NAME
            return BAD_RECORD, o
        if n_cig == 2 and l_seq > 0:
            # More than 65535 CIGAR ops: the real CIGAR is in a CG:B,I tag behind a kSmN placeholder;
            # HTSlib swaps it in on reading, so alignstats sees the real one.
            c0 = _u32(buf, cig_off)
            c1 = _u32(buf, cig_off + 4)
            if (c0 & 0xF) == 4 and (c0 >> 4) == l_seq and (c1 & 0xF) == 3:
                t = _aux_find(buf, aux_off, rec_end, 67, 71)  # CG
                if t >= 0 and t + 6 <= rec_end and buf[t] == 66 and buf[t + 1] == 73:
                    cnt = _u32(buf, t + 2)
                    if t + 6 + 4 * cnt <= rec_end:
                        cig_off = t + 6
                        n_cig = cnt
        if n_cig > 0 and l_seq > 0 and (flag & F_UNMAP) == 0:
            # M I S = X consume the query (HTSlib's bam_cigar2qlen); codes 9-15 consume nothing
            qlen = 0
            for i in range(n_cig):
                c = _u32(buf, cig_off + 4 * i)
                op = c & 0xF
                if op == 0 or op == 1 or op == 4 or op == 7 or op == 8:
                    qlen += c >> 4
            if qlen != l_seq:
                state[S_BAD_KIND] = BAD_CIGAR
                return BAD_RECORD, o
        n_ref = params[P_N_REF]
        if tid < -1 or tid >= n_ref:
            state[S_BAD_KIND] = BAD_TID
            return BAD_RECORD, o
        if mtid < -1 or mtid >= n_ref:
            state[S_BAD_KIND] = BAD_MTID
            return BAD_RECORD, o

        if do_cov and tid != state[S_CUR_TID]:
            state[S_NEW_TID] = tid
            return CHROM_CHANGE, o
        if state[S_OV_N] > OV_CAPACITY - 4:
            return OVERFLOW_FULL, o

        counts[L.C_TOTAL] += 1
        filtered = mapq < minq or (flag & req) != req or (flag & excl) != 0

        # Order check (a warning only, printed once by the driver), as the tool does it: every record
        # is checked, filtered or not, but only unfiltered ones move the position on; the position is
        # forgotten at each chromosome change and at the start of each read section.
        if state[S_SEC_LEFT] <= 0:
            state[S_SEC_LEFT] = params[P_SECTION]
            state[S_LAST_POS] = -2
        state[S_SEC_LEFT] -= 1
        if tid != state[S_ORD_TID]:
            if state[S_ORD_TID] >= 0:
                state[S_LAST_TID] = state[S_ORD_TID]
            state[S_ORD_TID] = tid
            if state[S_WARNED] == 0 and tid != -1 and state[S_LAST_TID] > tid:
                state[S_WARNED] = 1
                state[S_WARN_KIND] = 2
                state[S_WARN_TID] = tid
                state[S_WARN_PREV] = state[S_LAST_TID]
                state[S_WARN_CUR] = tid
            state[S_LAST_POS] = -2
        if state[S_WARNED] == 0 and pos < state[S_LAST_POS]:
            state[S_WARNED] = 1
            state[S_WARN_KIND] = 1
            state[S_WARN_TID] = tid
            state[S_WARN_PREV] = state[S_LAST_POS]
            state[S_WARN_CUR] = pos
        if filtered:
            counts[L.C_FILTERED] += 1
            o = rec_end
            continue
        counts[L.C_UNFILTERED] += 1
        state[S_LAST_POS] = pos

        unmapped = (flag & F_UNMAP) != 0
        if do_aln:
            g2 = -1
            if flag & F_READ1:
                g2 = 1
            elif flag & F_READ2:
                g2 = 2
            aln[0, L.A_R_TOTAL] += 1
            aln[0, L.A_B_TOTAL] += l_seq
            if g2 > 0:
                aln[g2, L.A_R_TOTAL] += 1
                aln[g2, L.A_B_TOTAL] += l_seq
            if unmapped:
                aln[0, L.A_R_UNMAPPED] += 1
                aln[0, L.A_B_UNMAPPED] += l_seq
                if g2 > 0:
                    aln[g2, L.A_R_UNMAPPED] += 1
                    aln[g2, L.A_B_UNMAPPED] += l_seq
            else:
                aln[0, L.A_R_MAPPED] += 1
                aln[0, L.A_B_MAPPED] += l_seq
                if g2 > 0:
                    aln[g2, L.A_R_MAPPED] += 1
                    aln[g2, L.A_B_MAPPED] += l_seq
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
                        aln[g, L.A_R_AQP] += 1
                        aln[g, L.A_B_AQP] += l_seq
                        if is_dup:
                            aln[g, L.A_R_DUP] += 1
                            aln[g, L.A_B_DUP] += l_seq
                        aln[g, L.A_B_ALIGNED] += aligned
                        aln[g, L.A_B_MATCHED] += match
                        aln[g, L.A_B_MISM] += mism
                        aln[g, L.A_B_INS] += ins
                        aln[g, L.A_B_DEL] += dl
                        if sc > 0:
                            aln[g, L.A_R_SOFT] += 1
                            aln[g, L.A_B_SOFT] += sc
                        if perfect:
                            aln[g, L.A_R_PERFECT] += 1
                            aln[g, L.A_B_PERFECT] += aligned
                        aln[g, L.A_Q20] += q20
                        aln[g, L.A_Q30] += q30
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
                    counts[L.C_PAIRS_R2] += 1
                munmap = (flag & F_MUNMAP) != 0
                if unmapped and munmap:
                    counts[L.C_UNPAIRED] += 1
                elif unmapped:
                    counts[L.C_R1_UNPAIRED] += 1
                elif munmap:
                    counts[L.C_R2_UNPAIRED] += 1
                else:
                    counts[L.C_TOTAL_PAIRS] += 1
                    if tid == mtid:
                        counts[L.C_SAME_CHR] += 1
            if (flag & (F_UNMAP | F_SECONDARY | F_QCFAIL | F_DUP)) == 0:
                counts[L.C_CHIM_DEN] += 1
                if (flag & (F_PROPER | F_MUNMAP)) == 0:
                    counts[L.C_CHIM_NUM] += 1
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

        if do_cov:
            counts[L.C_COV_TOTAL] += 1
            if (flag & (F_UNMAP | F_SECONDARY | F_QCFAIL)) != 0 or tid < 0:
                o = rec_end
                continue
            counts[L.C_COV_ALIGNED] += 1
            if flag & F_PAIRED:
                counts[L.C_COV_PAIRED] += 1
                if not (flag & F_MUNMAP):
                    counts[L.C_COV_PAIRED_MATES] += 1
            if flag & F_DUP:
                counts[L.C_COV_DUP] += 1
                if not keep_dups:
                    o = rec_end
                    continue
            chrom_len = state[S_CUR_LEN]

            # Overlap intervals (-O / -M) for the left-most mate of a same-chromosome pair.
            n_iv = 0
            if overlap != OVERLAP_NONE and not (flag & F_MUNMAP) and tid == mtid and pos < mpos:
                n_iv = overlap_intervals(buf, pos, mpos, n_cig, cig_off, aux_off, rec_end, overlap, scratch)

            # Depth walk: M/=/X add depth, D advances, N does not (Q7); qualities indexed by the
            # reference offset (Q6).
            in_target = False
            in_buffer = False
            ii = 0
            ref_pos = np.int64(0)
            for ci in range(n_cig):
                c = _u32(buf, cig_off + 4 * ci)
                op = c & 0xF
                ln = np.int64(c >> 4)
                if op == 0 or op == 7 or op == 8:
                    b0 = pos + ref_pos
                    k0 = 0
                    if b0 < 0:
                        k0 = -b0
                    k1 = ln
                    if b0 + k1 > chrom_len:
                        k1 = chrom_len - b0
                    if depth_diff:
                        # two writes per block instead of one per base; the word at chrom_len is left
                        # alone (the prefix sum stops before it, and capture's Q9 scan reads it)
                        if k1 > k0:
                            depth[b0 + k0] += 1
                            if b0 + k1 < chrom_len:
                                depth[b0 + k1] -= 1
                        ref_pos += ln
                        continue
                    if n_iv == 0 and minbq == 0 and not do_cap:
                        # common WGS case: nothing to filter, no target states to look at
                        for rp in range(b0 + k0, b0 + k1):
                            depth[rp] += 1
                        ref_pos += ln
                        continue
                    for k in range(k0, k1):
                        rp = b0 + k
                        word = depth[rp]
                        st = word >> STATE_SHIFT
                        if st == STATE_TARGET:
                            in_target = True
                        elif st == STATE_BUFFER:
                            in_buffer = True
                        in_ov = False
                        if ii < n_iv:
                            if rp >= ive[ii]:
                                ii += 1
                            if ii < n_iv and ivs[ii] <= rp < ive[ii]:
                                in_ov = True
                        if in_ov:
                            counts[L.C_WGS_OVERLAP] += 1
                            if st == STATE_TARGET:
                                counts[L.C_CAP_OVERLAP] += 1
                            continue
                        if minbq > 0:
                            qi = qual_off + ref_pos + k
                            qv = np.int64(buf[qi]) if qi < rec_end else np.int64(0)
                            if qv < minbq:
                                counts[L.C_WGS_LOWQ] += 1
                                if st == STATE_TARGET:
                                    counts[L.C_CAP_OVERLAP] += 1
                                continue
                        depth[rp] = word + 1
                    ref_pos += ln
                elif op == 2:
                    ref_pos += ln
            if do_cap:
                if in_target:
                    counts[L.C_CAP_TARGET_READS] += 1
                elif in_buffer:
                    counts[L.C_CAP_BUFFER_READS] += 1
            counts[L.C_PROCESSED] += 1
        o = rec_end
