"""Layout of the kernel's plain arrays: status codes, params, counters, state, histogram sizes, flags.

Indices into the arrays are module constants so the driver, the accumulators and the kernel agree.
All counters are int64 arrays updated with wrap-around arithmetic: alignstats keeps them in uint64 and
some quirks (Q3) depend on the wrap, and int64 two's complement has the same bits. Rendering reads them
back modulo 2**64.
"""

from __future__ import annotations

import numpy as np

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
# 1: depth as a difference array (+1 at a block's start, -1 past its end), turned into depths by one
# prefix sum per chromosome; only when no base-level filter or target state is in force (Engine decides)
P_DEPTH_DIFF = 11
N_PARAMS = 12

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


def new_scratch(n: int = 1 << 16) -> np.ndarray:
    return np.zeros((6, n), dtype=np.int64)
