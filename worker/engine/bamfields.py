"""Reading BAM record fields from raw bytes: little-endian integers, aux tags, the MC:Z CIGAR."""

from __future__ import annotations

import numpy as np
from numba import njit


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
