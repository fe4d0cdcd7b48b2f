"""Numba kernels over raw (decompressed) BAM records: the per-record and per-base work.

The driver (`engine.py`) feeds a buffer of concatenated BAM records (the BAM on-disk layout after BGZF
decompression, header stripped). `process_records` walks the buffer and updates plain integer arrays;
it stops and hands control back at a chromosome change (the driver tallies the finished chromosome with
numpy and prepares the next one), when the overflow list for rare out-of-range histogram values is
nearly full, or when the buffer ends in the middle of a record.

All counters are int64 arrays updated with wrap-around arithmetic: alignstats keeps them in uint64 and
some quirks (Q3) depend on the wrap, and int64 two's complement has the same bits. Rendering reads them
back modulo 2**64.

Indices into the arrays are module constants so the driver, the accumulators and the kernel agree.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# --- status codes returned by process_records -------------------------------------------------------
NEED_MORE = 0  # buffer exhausted (possibly mid-record): refill and call again from the returned offset
CHROM_CHANGE = 1  # the record at the returned offset has a new tid; finish/start chromosomes first
OVERFLOW_FULL = 2  # the overflow list must be drained before continuing
BAD_RECORD = 3  # the record at the returned offset is malformed (sizes inconsistent)

# --- why a record is BAD_RECORD (state[S_BAD_KIND]): HTSlib's bam_read1/sam_read1 checks, in its order --
BAD_SIZES = 1  # block_size < 32, l_seq < 0, or the fields do not fit in block_size
BAD_NAME = 2  # l_read_name 0 (HTSlib requires at least the NUL)
BAD_CIGAR = 3  # a mapped record whose CIGAR query length differs from l_seq (l_seq > 0)
BAD_TID = 4  # refID outside [-1, n_ref)
BAD_MTID = 5  # next_refID outside [-1, n_ref)

# --- params (int64 array) ---------------------------------------------------------------------------
P_MINQ = 0
P_REQ_FLAGS = 1
P_EXCL_FLAGS = 2
P_MIN_BASEQ = 3
P_DO_ALN = 4
P_DO_COV = 5
P_DO_CAP = 6
P_KEEP_DUPS = 7
P_OVERLAP = 8  # 0 none, 1 -O (position based), 2 -M (MC tag)
P_SECTION = 9  # records per read section (-n / 16): the tool's position order check restarts at each
P_N_REF = 10  # contigs in the header: refID/next_refID must be below it (HTSlib's sam_read1 check)
N_PARAMS = 11

OVERLAP_NONE = 0
OVERLAP_POS = 1
OVERLAP_MC = 2

# --- per read-group alignment counters (aln array shape (3, N_ALN)): group 0 all, 1 R1, 2 R2 --------
A_R_TOTAL = 0
A_B_TOTAL = 1
A_R_UNMAPPED = 2
A_B_UNMAPPED = 3
A_R_MAPPED = 4
A_B_MAPPED = 5
A_R_AQP = 6
A_B_AQP = 7
A_R_DUP = 8
A_B_DUP = 9
A_B_ALIGNED = 10
A_B_MATCHED = 11
A_B_MISM = 12
A_B_INS = 13
A_B_DEL = 14
A_R_SOFT = 15
A_B_SOFT = 16
A_R_PERFECT = 17
A_B_PERFECT = 18
A_Q20 = 19
A_Q30 = 20
N_ALN = 21

# --- global counters (counts array) -----------------------------------------------------------------
C_TOTAL = 0
C_UNFILTERED = 1
C_FILTERED = 2
C_PAIRS_R2 = 3  # READ2 records among paired non-R1 records: denominator of the pair pcts
C_UNPAIRED = 4
C_R1_UNPAIRED = 5
C_R2_UNPAIRED = 6
C_TOTAL_PAIRS = 7
C_SAME_CHR = 8
C_CHIM_NUM = 9
C_CHIM_DEN = 10
C_COV_TOTAL = 11
C_COV_ALIGNED = 12
C_COV_PAIRED = 13
C_COV_PAIRED_MATES = 14
C_COV_DUP = 15
C_WGS_OVERLAP = 16
C_WGS_LOWQ = 17
C_CAP_OVERLAP = 18
C_CAP_TARGET_READS = 19
C_CAP_BUFFER_READS = 20
C_PROCESSED = 21
N_COUNTS = 22

# --- kernel state (state array): not merged, describes where the reader is --------------------------
S_CUR_TID = 0  # chromosome currently held in the depth array (-1: none)
S_CUR_LEN = 1
S_LAST_TID = 2  # order check: last placed tid seen (any record)
S_LAST_POS = 3  # order check: position of the last *unfiltered* record in this section and tid
S_WARNED = 4
S_WARN_TID = 5
S_WARN_PREV = 6
S_WARN_CUR = 7
S_OV_N = 8  # entries used in the overflow list
S_NEW_TID = 9  # tid of the record that caused CHROM_CHANGE
S_WARN_KIND = 10  # 1: pos went backwards, 2: tid went backwards
S_ORD_TID = 11  # tid of the previous record of any kind (the tool's current chromosome)
S_SEC_LEFT = 12  # records left in the current read section
S_BAD_KIND = 13  # with BAD_RECORD: which check failed (BAD_SIZES ...)
N_STATE = 14

# Histogram sizes kept in dense arrays; anything outside goes to the overflow list (kind, value).
LEN_HIST_SIZE = 1 << 16
INS_HIST_SIZE = 1 << 16
OV_CAPACITY = 4096
OV_KIND_INSERT = 3  # kinds 0..2 are the read groups of the aligned-length histograms

DEPTH_MASK = 0x3FFFFFFF
STATE_SHIFT = 30
STATE_TARGET = 3
STATE_BUFFER = 1

F_PAIRED = 0x1
F_PROPER = 0x2
F_UNMAP = 0x4
F_MUNMAP = 0x8
F_READ1 = 0x40
F_READ2 = 0x80
F_SECONDARY = 0x100
F_QCFAIL = 0x200
F_DUP = 0x400
F_SUPP = 0x800


def new_params() -> np.ndarray:
    params = np.zeros(N_PARAMS, dtype=np.int64)
    params[P_SECTION] = 1024
    # no contig limit until the engine sets the header's count (kernel unit tests build records freely)
    params[P_N_REF] = 1 << 31
    return params


def new_state() -> np.ndarray:
    state = np.zeros(N_STATE, dtype=np.int64)
    state[S_CUR_TID] = -1
    state[S_LAST_TID] = -999  # the tool's initial "previous" chromosome indexes
    state[S_ORD_TID] = -999
    state[S_LAST_POS] = -2
    return state


@njit(cache=True, inline="always")
def _i32(buf, o):
    v = (
        np.int64(buf[o])
        | (np.int64(buf[o + 1]) << 8)
        | (np.int64(buf[o + 2]) << 16)
        | (np.int64(buf[o + 3]) << 24)
    )
    if v >= 0x80000000:
        v -= 0x100000000
    return v


@njit(cache=True, inline="always")
def _u32(buf, o):
    return (
        np.int64(buf[o])
        | (np.int64(buf[o + 1]) << 8)
        | (np.int64(buf[o + 2]) << 16)
        | (np.int64(buf[o + 3]) << 24)
    )


@njit(cache=True, inline="always")
def _u16(buf, o):
    return np.int64(buf[o]) | (np.int64(buf[o + 1]) << 8)


@njit(cache=True)
def _aux_find(buf, o, end, t0, t1):
    """Offset of the type byte of aux tag (t0,t1) in [o, end), or -1."""
    while o + 3 <= end:
        a = buf[o]
        b = buf[o + 1]
        typ = buf[o + 2]
        if a == t0 and b == t1:
            return o + 2
        o += 3
        if typ == 65 or typ == 99 or typ == 67:  # A c C
            o += 1
        elif typ == 115 or typ == 83:  # s S
            o += 2
        elif typ == 105 or typ == 73 or typ == 102:  # i I f
            o += 4
        elif typ == 100:  # d
            o += 8
        elif typ == 90 or typ == 72:  # Z H: NUL-terminated
            while o < end and buf[o] != 0:
                o += 1
            o += 1
        elif typ == 66:  # B: subtype, int32 count, elements
            if o + 5 > end:
                return -1
            sub = buf[o]
            cnt = _u32(buf, o + 1)
            o += 5
            if sub == 99 or sub == 67:
                o += cnt
            elif sub == 115 or sub == 83:
                o += 2 * cnt
            else:
                o += 4 * cnt
        else:
            return -1
    return -1


@njit(cache=True)
def _aux_int(buf, t, end, default):
    """bam_aux2i of the tag whose type byte is at t; `default` when the type is not an integer."""
    typ = buf[t]
    o = t + 1
    if typ == 99 and o < end:  # c
        v = np.int64(buf[o])
        return v - 256 if v >= 128 else v
    if typ == 67 and o < end:  # C
        return np.int64(buf[o])
    if typ == 115 and o + 2 <= end:  # s
        v = _u16(buf, o)
        return v - 65536 if v >= 32768 else v
    if typ == 83 and o + 2 <= end:  # S
        return _u16(buf, o)
    if typ == 105 and o + 4 <= end:  # i
        return _i32(buf, o)
    if typ == 73 and o + 4 <= end:  # I
        return _u32(buf, o)
    return default


@njit(cache=True)
def _is_mc_op(ch):
    """A CIGAR letter the tool's MC parser accepts (MIDNSHP=XB); anything else ends the parse."""
    return (
        ch == 77
        or ch == 73
        or ch == 68
        or ch == 78
        or ch == 83
        or ch == 72
        or ch == 80
        or ch == 61
        or ch == 88
        or ch == 66
    )


@njit(cache=True)
def _parse_mc(buf, t, end, mstart, mend, mpos):
    """Parse a MC:Z CIGAR at type byte t into the mate's M/=/X reference blocks; return the count.

    As the tool does: it first counts the string's *letters* (C isalpha) and parses at most that many
    operations, so '=' (not a letter) makes "75=" zero operations and "10M5=20X" two (10M, 5=);
    each operation is strtol + one character, and a missing number or an unknown character ends it.
    """
    if buf[t] != 90:
        return -1
    limit = 0
    o = t + 1
    while o < end and buf[o] != 0:
        ch = buf[o]
        if (65 <= ch <= 90) or (97 <= ch <= 122):
            limit += 1
        o += 1
    o = t + 1
    n = 0
    n_ops = 0
    ref = mpos
    while o < end and buf[o] != 0 and n_ops < limit:
        p = o
        while p < end and (buf[p] == 32 or 9 <= buf[p] <= 13):
            p += 1
        neg = False
        if p < end and (buf[p] == 43 or buf[p] == 45):
            neg = buf[p] == 45
            p += 1
        d0 = p
        num = np.int64(0)
        while p < end and 48 <= buf[p] <= 57:
            if num < (np.int64(1) << 40):  # saturate (strtol clamps; only the low 28 bits survive)
                num = num * 10 + (buf[p] - 48)
            p += 1
        if p == d0 or p >= end or buf[p] == 0:
            break
        ch = buf[p]
        o = p + 1
        if not _is_mc_op(ch):
            break
        if neg:
            num = -num
        # stored as (uint32)len << 4 and read back with >> 4: the low 28 bits
        ln = num & 0x0FFFFFFF
        n_ops += 1
        if ch == 77 or ch == 61 or ch == 88:  # M = X
            if n < mstart.shape[0]:
                mstart[n] = ref
                mend[n] = ref + ln
                n += 1
            ref += ln
        elif ch == 68 or ch == 78:  # D N
            ref += ln
    return n


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
    overlap = params[P_OVERLAP]
    rstart = scratch[0]
    rend = scratch[1]
    mstart = scratch[2]
    mend = scratch[3]
    ivs = scratch[4]
    ive = scratch[5]
    nscr = rstart.shape[0]

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

        counts[C_TOTAL] += 1
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
            counts[C_FILTERED] += 1
            o = rec_end
            continue
        counts[C_UNFILTERED] += 1
        state[S_LAST_POS] = pos

        unmapped = (flag & F_UNMAP) != 0

        if do_aln:
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

        if do_cov:
            counts[C_COV_TOTAL] += 1
            if (flag & (F_UNMAP | F_SECONDARY | F_QCFAIL)) != 0 or tid < 0:
                o = rec_end
                continue
            counts[C_COV_ALIGNED] += 1
            if flag & F_PAIRED:
                counts[C_COV_PAIRED] += 1
                if not (flag & F_MUNMAP):
                    counts[C_COV_PAIRED_MATES] += 1
            if flag & F_DUP:
                counts[C_COV_DUP] += 1
                if not keep_dups:
                    o = rec_end
                    continue
            chrom_len = state[S_CUR_LEN]

            # Overlap intervals (-O / -M) for the left-most mate of a same-chromosome pair.
            n_iv = 0
            if overlap != OVERLAP_NONE and not (flag & F_MUNMAP) and tid == mtid and pos < mpos:
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
                            counts[C_WGS_OVERLAP] += 1
                            if st == STATE_TARGET:
                                counts[C_CAP_OVERLAP] += 1
                            continue
                        if minbq > 0:
                            qi = qual_off + ref_pos + k
                            qv = np.int64(buf[qi]) if qi < rec_end else np.int64(0)
                            if qv < minbq:
                                counts[C_WGS_LOWQ] += 1
                                if st == STATE_TARGET:
                                    counts[C_CAP_OVERLAP] += 1
                                continue
                        depth[rp] = word + 1
                    ref_pos += ln
                elif op == 2:
                    ref_pos += ln
            if do_cap:
                if in_target:
                    counts[C_CAP_TARGET_READS] += 1
                elif in_buffer:
                    counts[C_CAP_BUFFER_READS] += 1
            counts[C_PROCESSED] += 1
        o = rec_end


def new_scratch(n: int = 1 << 16) -> np.ndarray:
    return np.zeros((6, n), dtype=np.int64)


# --- per-chromosome helpers -------------------------------------------------------------------------


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
