"""Genome scale (#17): how time and memory grow with the genome (longest contig) and with depth (records).

Usage: python benchmarks/genome_scale.py generate [--dir /work/large2] [--only CASE,...] [--seed 17]
       python benchmarks/genome_scale.py run [--dir /work/large2] [--repeat 3] [--largest-repeat N]
                                             [--only CASE,...] [--json PATH] [--alignstats PATH]
       python benchmarks/genome_scale.py profile [--dir /work/large2] [--case c50m_r20m]

`generate` writes, outside the repository, one directory per case (CASES below): ref.fa(.fai), a
coordinate-sorted indexed BAM and a capture-like targets.bed. Records are written directly, not aligned
(bwa would take hours at this size): numpy builds each window of fixed-size raw BAM records (paired 2x150,
CIGARs with soft clips and 1-3 bp indels, NM = injected mismatches + indel bases, MC = the mate's CIGAR,
a MAPQ spread, flagged duplicates at their original's coordinates, QC-fail pairs, half-mapped and improper
pairs, unplaced unmapped pairs at the end), already in coordinate order, and `samtools view -b` only
compresses them (uncompressed BAM on its stdin), then `samtools index`. Same seed, same bytes.

The six cases are one genome at three scales (main contig 12.5/25/50 Mbp, every large contig scaled
alike, the tiny ones fixed) and three record counts, chosen so that each effect is seen with the other
held fixed: records 5/10/20 M on the 50 Mbp genome (depth), genome 12.5/25/50 Mbp at 5 M records (genome
size), and 12.5/25/50 Mbp at the same depth (5/10/20 M: both, as a real genome would grow).

`run` measures per case, in one session and interleaved round by round: the engine (this checkout,
`python -m worker.engine.cli`) on one core (taskset -c 0) and on two (ALIGNBATCH_ENGINE_CPUS=2 with the
pool its kernels call for, the same with the JIT kernels, and streaming from stdin), the real alignstats
(-C and -t), `samtools stats`,
`samtools flagstat -@1` (taskset -c 0) and `-@2`: median wall, that run's CPU (user+sys from wait4,
threads and reaped children included) and the peak memory over the runs (VmHWM of the command, and
the summed RssAnon of it and its descendants, which covers the process pool's workers; both sampled
from /proc every 2 ms), the 1-minute load average at each start; and whether each engine report is
byte-identical to the real tool's. Prints markdown tables and a growth fit, writes JSON.

`profile` is "where the time goes" for one case: the engine's one-core -C run under cProfile (inflate is
in line on one core, so it shows), start-up measured on a tiny BAM, and the memory model.
Figures only; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from procstat import Measure, load_text, measure  # noqa: E402

ENGINE = [sys.executable, "-m", "worker.engine.cli"]
DEFAULT_DIR = Path("/work/large2")

# ------------------------------------------------------------------------------------------- the design

# (name, length at scale 1, scales with the genome, relative fragment density)
CONTIGS = (
    ("chr1", 50_000_000, True, 1.0),
    ("chr2", 20_000_000, True, 1.0),
    ("chr3", 10_000_000, True, 1.0),
    ("chr4", 5_000_000, True, 1.0),
    ("chrM", 16_569, False, 10.0),  # mitochondrion-like: ~10x the depth
    ("chrT", 2_000, False, 1.0),  # tiny, a handful of reads
    ("chrU", 50_000, False, 0.0),  # in the header, never gets reads
)


@dataclass(frozen=True)
class Case:
    name: str
    scale: float  # of the large contigs
    records: int


CASES = (
    Case("c12.5m_r5m", 0.25, 5_000_000),
    Case("c25m_r5m", 0.5, 5_000_000),
    Case("c50m_r5m", 1.0, 5_000_000),
    Case("c25m_r10m", 0.5, 10_000_000),
    Case("c50m_r10m", 1.0, 10_000_000),
    Case("c50m_r20m", 1.0, 20_000_000),
)
TARGETS_AT_SCALE_1 = 3000
READ_LEN = 150
UNPLACED_FRACTION = 0.005  # of the records: unmapped pairs without a position, at the end of the file

# CIGARs (BAM op codes M=0 I=1 D=2 S=4), each 150 query bases, and how often
CIGARS = (
    ((0, 150),),
    ((4, 12), (0, 138)),
    ((0, 131), (4, 19)),
    ((0, 70), (2, 3), (0, 80)),
    ((0, 60), (1, 2), (0, 88)),
    ((4, 5), (0, 100), (2, 1), (0, 45)),
)
CIGAR_P = (0.82, 0.05, 0.05, 0.03, 0.03, 0.02)
UNMAPPED = -1  # "kind" of an unmapped record (no CIGAR)


def contig_lengths(scale: float) -> list[tuple[str, int]]:
    return [(n, int(ln * scale) if scaled else ln) for n, ln, scaled, _ in CONTIGS]


def cigar_string(kind: int) -> str:
    return "".join(f"{ln}{'MIDNSHP=X'[op]}" for op, ln in CIGARS[kind])


def cigar_ref_len(kind: int) -> int:
    return sum(ln for op, ln in CIGARS[kind] if op in (0, 2))


def cigar_indel_len(kind: int) -> int:
    return sum(ln for op, ln in CIGARS[kind] if op in (1, 2))


def cigar_lead_clip(kind: int) -> int:
    op, ln = CIGARS[kind][0]
    return ln if op == 4 else 0


MAX_CIGAR_OPS = max(len(c) for c in CIGARS)
MAX_MC = max(len(cigar_string(k)) for k in range(len(CIGARS)))
NAME_DIGITS = 9  # read names "r" + 9 digits + NUL
L_READ_NAME = NAME_DIGITS + 2
FIXED = 36  # block_size .. tlen
# every record has the same size: a padding tag XP:Z absorbs the differences (fewer CIGAR ops, no NM/MC)
RECORD_SIZE = FIXED + L_READ_NAME + 4 * MAX_CIGAR_OPS + READ_LEN // 2 + READ_LEN + 4 + (MAX_MC + 4) + 4


def reg2bin(beg: np.ndarray, end: np.ndarray) -> np.ndarray:
    """SAM spec reg2bin for [beg, end) (vectorised)."""
    e = end - 1
    out = np.zeros(beg.shape, dtype=np.int64)
    done = np.zeros(beg.shape, dtype=bool)
    for shift, base in ((14, 4681), (17, 585), (20, 73), (23, 9), (26, 1)):
        hit = ~done & ((beg >> shift) == (e >> shift))
        out[hit] = base + (beg[hit] >> shift)
        done |= hit
    return out


BASE_CODES = np.array([1, 2, 4, 8], dtype=np.uint8)  # A C G T as BAM 4-bit codes
CODE_INDEX = np.zeros(16, dtype=np.uint8)
CODE_INDEX[BASE_CODES] = np.arange(4, dtype=np.uint8)


def contig_codes(seed: int, index: int, length: int) -> np.ndarray:
    """A contig's bases as BAM 4-bit codes; a prefix of the same contig at a larger scale."""
    rng = np.random.default_rng([seed, 1000 + index])
    return BASE_CODES[rng.integers(0, 4, length, dtype=np.uint8)]


def quality_templates(rng: np.random.Generator, n: int, read2: bool) -> np.ndarray:
    """n binned Illumina-like quality strings (phred 2/12/23/37), worse towards the 3' end and in read 2."""
    col = np.arange(READ_LEN) / READ_LEN
    p_bad = (0.02 + 0.12 * col**2) * (1.6 if read2 else 1.0)
    poor = rng.random(n) < 0.01
    p = np.where(poor[:, None], 0.5, p_bad[None, :])
    bad = rng.random((n, READ_LEN)) < p
    low = np.array([2, 12, 23], dtype=np.uint8)[rng.integers(0, 3, (n, READ_LEN))]
    return np.where(bad, low, np.uint8(37)).astype(np.uint8)


@dataclass
class Window:
    """Records of one window as columns (one row per record), before they are laid out as bytes."""

    tid: np.ndarray
    pos: np.ndarray
    mapq: np.ndarray
    flag: np.ndarray
    kind: np.ndarray  # CIGAR index or UNMAPPED
    mate_kind: np.ndarray  # the mate's CIGAR index (for MC) or UNMAPPED (no MC)
    mtid: np.ndarray
    mpos: np.ndarray
    tlen: np.ndarray
    name: np.ndarray  # pair number
    nm: np.ndarray
    seq: np.ndarray  # (n, 150) 4-bit codes
    qual: np.ndarray  # (n, 150)

    def take(self, idx: np.ndarray) -> Window:
        return Window(**{k: v[idx] for k, v in self.__dict__.items()})

    @staticmethod
    def concat(parts: list[Window]) -> Window:
        return Window(
            **{k: np.concatenate([p.__dict__[k] for p in parts]) for k in Window.__dataclass_fields__}
        )

    def __len__(self) -> int:
        return len(self.pos)


def fragments_window(
    rng: np.random.Generator,
    tid: int,
    codes: np.ndarray,
    lo: int,
    hi: int,
    n_frag: int,
    first_name: int,
    quals: tuple[np.ndarray, np.ndarray],
) -> Window:
    """n_frag read pairs whose left-most mate starts in [lo, hi) of contig tid, as 2*n_frag records."""
    length = len(codes)
    n = n_frag
    start = np.sort(rng.integers(lo, hi, n))
    proper = rng.random(n) >= 0.01
    insert = np.where(
        proper,
        np.clip(rng.normal(350, 90, n), 160, 1000),
        rng.integers(1000, 20000, n),
    ).astype(np.int64)
    kind_l = rng.choice(len(CIGARS), n, p=CIGAR_P)
    kind_r = rng.choice(len(CIGARS), n, p=CIGAR_P)
    # duplicates: a copy of the last original at the same coordinates and CIGARs
    dup = rng.random(n) < 0.04
    dup[0] = False
    orig = np.maximum.accumulate(np.where(dup, 0, np.arange(n)))
    start, insert, kind_l, kind_r = start[orig], insert[orig], kind_l[orig], kind_r[orig]
    ref_len = np.array([cigar_ref_len(k) for k in range(len(CIGARS))])
    end_r = np.minimum(start + insert, length)
    pos_r = np.maximum(end_r - ref_len[kind_r], start)
    tlen = end_r - start
    # one mate unmapped (placed at the other's position), QC-fail pairs
    half = rng.random(n) < 0.01
    half_left = half & (rng.random(n) < 0.5)  # the left mate is the unmapped one
    half_right = half & ~half_left
    pos_r = np.where(half_right, start, pos_r)
    start_l = np.where(half_left, pos_r, start)
    qcfail = rng.random(n) < 0.003
    r1_left = rng.random(n) < 0.5

    base = (
        np.int64(0x1)
        | np.where(proper & ~half, 0x2, 0)
        | np.where(qcfail, 0x200, 0)
        | np.where(dup, 0x400, 0)
    )
    flag_l = base | np.where(r1_left, 0x40, 0x80) | np.where(half_right, 0, 0x20)
    flag_r = base | np.where(r1_left, 0x80, 0x40) | np.where(half_right, 0, 0x10)
    flag_l = flag_l | np.where(half_left, 0x4, 0) | np.where(half_right, 0x8, 0)
    flag_r = flag_r | np.where(half_right, 0x4, 0) | np.where(half_left, 0x8, 0)
    k_l = np.where(half_left, UNMAPPED, kind_l)
    k_r = np.where(half_right, UNMAPPED, kind_r)
    tl = np.where(half, 0, tlen)

    def mapq(m: int) -> np.ndarray:
        u = rng.random(m)
        return np.where(u < 0.85, 60, np.where(u < 0.90, 0, rng.integers(1, 60, m)))

    names = first_name + np.arange(n)
    tid_a = np.full(2 * n, tid, dtype=np.int64)
    kind = np.concatenate([k_l, k_r])
    pos = np.concatenate([start_l, pos_r])
    flag = np.concatenate([flag_l, flag_r])
    mq = np.where(kind == UNMAPPED, 0, mapq(2 * n))
    w = Window(
        tid=tid_a,
        pos=pos,
        mapq=mq,
        flag=flag,
        kind=kind,
        mate_kind=np.concatenate([k_r, k_l]),
        mtid=tid_a.copy(),
        mpos=np.concatenate([pos_r, start_l]),
        tlen=np.concatenate([tl, -tl]),
        name=np.concatenate([names, names]),
        nm=np.zeros(2 * n, dtype=np.int64),
        seq=np.empty((2 * n, READ_LEN), dtype=np.uint8),
        qual=np.empty((2 * n, READ_LEN), dtype=np.uint8),
    )
    # sequence: the reference under the read (soft clips included, indels ignored) + mismatches
    lead = np.array([cigar_lead_clip(k) for k in range(len(CIGARS))])
    first = np.clip(w.pos - np.where(kind == UNMAPPED, 0, lead[np.maximum(kind, 0)]), 0, length - READ_LEN)
    w.seq[:] = codes[first[:, None] + np.arange(READ_LEN, dtype=np.int64)[None, :]]
    mapped = kind != UNMAPPED
    k_mis = np.minimum(rng.geometric(0.55, 2 * n) - 1, 6)
    k_mis[~mapped] = 0
    cols = rng.integers(0, READ_LEN, (2 * n, 6))
    sel = np.arange(6)[None, :] < k_mis[:, None]
    rows = np.broadcast_to(np.arange(2 * n)[:, None], cols.shape)[sel]
    c = cols[sel]
    w.seq[rows, c] = BASE_CODES[(CODE_INDEX[w.seq[rows, c]] + rng.integers(1, 4, len(rows))) % 4]
    indel = np.array([cigar_indel_len(k) for k in range(len(CIGARS))])
    w.nm[:] = np.where(mapped, k_mis + indel[np.maximum(kind, 0)], 0)
    is_r2 = (flag & 0x80) != 0
    pick = rng.integers(0, len(quals[0]), 2 * n)
    w.qual[:] = np.where(is_r2[:, None], quals[1][pick], quals[0][pick])
    rev = (flag & 0x10) != 0
    w.qual[rev] = w.qual[rev, ::-1]
    return w


def unplaced_window(
    rng: np.random.Generator, n_pairs: int, first_name: int, quals: tuple[np.ndarray, np.ndarray]
) -> Window:
    n = 2 * n_pairs
    flag = np.int64(0x1 | 0x4 | 0x8) | np.concatenate([np.full(n_pairs, 0x40), np.full(n_pairs, 0x80)])
    names = first_name + np.arange(n_pairs)
    minus = np.full(n, -1, dtype=np.int64)
    pick = rng.integers(0, len(quals[0]), n)
    qual = np.where(((flag & 0x80) != 0)[:, None], quals[1][pick], quals[0][pick])
    return Window(
        tid=minus,
        pos=minus.copy(),
        mapq=np.zeros(n, dtype=np.int64),
        flag=flag,
        kind=np.full(n, UNMAPPED),
        mate_kind=np.full(n, UNMAPPED),
        mtid=minus.copy(),
        mpos=minus.copy(),
        tlen=np.zeros(n, dtype=np.int64),
        name=np.concatenate([names, names]),
        nm=np.zeros(n, dtype=np.int64),
        seq=BASE_CODES[rng.integers(0, 4, (n, READ_LEN), dtype=np.uint8)],
        qual=qual.astype(np.uint8),
    )


def _put(out: np.ndarray, col: int, values: np.ndarray, dtype: str) -> int:
    """Write one little-endian field per row at column `col`; returns the next column."""
    b = np.ascontiguousarray(values.astype(dtype)).view(np.uint8).reshape(len(values), -1)
    out[:, col : col + b.shape[1]] = b
    return col + b.shape[1]


def encode(w: Window) -> bytes:
    """The window's records as raw BAM records, all RECORD_SIZE bytes, in the window's row order."""
    n = len(w)
    out = np.zeros((n, RECORD_SIZE), dtype=np.uint8)
    ref_len = np.array([cigar_ref_len(k) for k in range(len(CIGARS))])
    mapped = w.kind != UNMAPPED
    end = np.where(mapped, w.pos + ref_len[np.maximum(w.kind, 0)], w.pos + 1)
    bins = np.where(w.pos < 0, 4680, reg2bin(w.pos, end))
    n_cigar = np.where(mapped, np.array([len(c) for c in CIGARS])[np.maximum(w.kind, 0)], 0)
    c = _put(out, 0, np.full(n, RECORD_SIZE - 4), "<i4")
    c = _put(out, c, w.tid, "<i4")
    c = _put(out, c, w.pos, "<i4")
    c = _put(out, c, np.full(n, L_READ_NAME), "u1")
    c = _put(out, c, w.mapq, "u1")
    c = _put(out, c, bins, "<u2")
    c = _put(out, c, n_cigar, "<u2")
    c = _put(out, c, w.flag, "<u2")
    c = _put(out, c, np.full(n, READ_LEN), "<i4")
    c = _put(out, c, w.mtid, "<i4")
    c = _put(out, c, w.mpos, "<i4")
    c = _put(out, c, w.tlen, "<i4")
    out[:, c] = ord("r")
    digits = (w.name[:, None] // 10 ** np.arange(NAME_DIGITS - 1, -1, -1)[None, :]) % 10
    out[:, c + 1 : c + 1 + NAME_DIGITS] = (digits + ord("0")).astype(np.uint8)
    c += L_READ_NAME  # the NUL is already there
    packed = (w.seq[:, 0::2] << 4) | w.seq[:, 1::2]
    # the rest depends on the record's CIGAR (ops) and its mate's (MC): one group of rows per pair
    for kind in [UNMAPPED, *range(len(CIGARS))]:
        for mate in [UNMAPPED, *range(len(CIGARS))]:
            rows = np.flatnonzero((w.kind == kind) & (w.mate_kind == mate))
            if not len(rows):
                continue
            block = out[rows]
            col = c
            if kind != UNMAPPED:
                ops = np.array([(ln << 4) | op for op, ln in CIGARS[kind]], dtype="<u4").view(np.uint8)
                block[:, col : col + len(ops)] = ops
                col += len(ops)
            block[:, col : col + READ_LEN // 2] = packed[rows]
            col += READ_LEN // 2
            block[:, col : col + READ_LEN] = w.qual[rows]
            col += READ_LEN
            if kind != UNMAPPED:
                block[:, col : col + 3] = np.frombuffer(b"NMC", dtype=np.uint8)
                block[:, col + 3] = np.minimum(w.nm[rows], 255)
                col += 4
            if mate != UNMAPPED:
                tag = b"MCZ" + cigar_string(mate).encode() + b"\0"
                block[:, col : col + len(tag)] = np.frombuffer(tag, dtype=np.uint8)
                col += len(tag)
            pad = RECORD_SIZE - col - 4
            block[:, col : col + 3] = np.frombuffer(b"XPZ", dtype=np.uint8)
            block[:, col + 3 : col + 3 + pad] = ord("A")
            out[rows] = block  # the last byte stays NUL
    return out.tobytes()


def bam_header(contigs: list[tuple[str, int]], case: Case, seed: int) -> bytes:
    lines = ["@HD\tVN:1.6\tSO:coordinate"]
    lines += [f"@SQ\tSN:{n}\tLN:{ln}" for n, ln in contigs]
    lines.append("@RG\tID:gs\tSM:genome_scale\tPL:ILLUMINA")
    lines.append(f"@PG\tID:genome_scale\tPN:genome_scale.py\tCL:generate {case.name} seed={seed}")
    text = ("\n".join(lines) + "\n").encode()
    out = [b"BAM\1", len(text).to_bytes(4, "little"), text, len(contigs).to_bytes(4, "little")]
    for n, ln in contigs:
        out += [(len(n) + 1).to_bytes(4, "little"), n.encode() + b"\0", ln.to_bytes(4, "little")]
    return b"".join(out)


def placed_pairs(case: Case) -> list[int]:
    """Read pairs per contig: the placed records in proportion to length x density."""
    contigs = contig_lengths(case.scale)
    weight = np.array([ln * d for (_, ln), (*_, d) in zip(contigs, CONTIGS, strict=True)], dtype=float)
    pairs = case.records * (1 - UNPLACED_FRACTION) / 2
    return [round(pairs * float(w) / weight.sum()) for w in weight]


def generate_records(case: Case, seed: int, write, window_pairs: int = 100_000) -> int:
    """Feed the case's records, coordinate-sorted, to write(bytes); returns how many were written."""
    contigs = contig_lengths(case.scale)
    rng = np.random.default_rng([seed, int(case.scale * 1000), case.records])
    quals = (quality_templates(rng, 8192, False), quality_templates(rng, 8192, True))
    name = 0
    written = 0
    for tid, ((_, length), pairs) in enumerate(zip(contigs, placed_pairs(case), strict=True)):
        if not pairs:
            continue
        codes = contig_codes(seed, tid, length)
        n_win = max(1, -(-pairs // window_pairs))
        span = max(length - 1000, 1)  # left-most mates start here; room for the mate
        edges = np.linspace(0, span, n_win + 1).astype(np.int64)
        counts = rng.multinomial(pairs, np.diff(edges) / span)
        carry: Window | None = None
        for i in range(n_win):
            w = fragments_window(rng, tid, codes, edges[i], edges[i + 1], counts[i], name, quals)
            name += counts[i]
            if carry is not None:
                w = Window.concat([carry, w])
            w = w.take(np.argsort(w.pos, kind="stable"))
            cut = len(w) if i == n_win - 1 else int(np.searchsorted(w.pos, edges[i + 1]))
            write(encode(w.take(np.arange(cut))))
            written += cut
            carry = w.take(np.arange(cut, len(w)))
    n_unplaced = int(case.records * UNPLACED_FRACTION / 2)
    for lo in range(0, n_unplaced, window_pairs):
        m = min(window_pairs, n_unplaced - lo)
        write(encode(unplaced_window(rng, m, name, quals)))
        name += m
        written += 2 * m
    return written


def write_reference(path: Path, contigs: list[tuple[str, int]], seed: int) -> None:
    letters = np.frombuffer(b"NACNGNNNTNNNNNNN", dtype=np.uint8)  # 4-bit code -> letter
    with open(path, "wb") as fh:
        for tid, (name, length) in enumerate(contigs):
            fh.write(f">{name}\n".encode())
            seq = letters[contig_codes(seed, tid, length)]
            full = len(seq) // 60 * 60
            lines = np.concatenate(
                [seq[:full].reshape(-1, 60), np.full((full // 60, 1), 10, np.uint8)], axis=1
            )
            fh.write(lines.tobytes())
            if full < len(seq):
                fh.write(seq[full:].tobytes() + b"\n")


def make_targets(contigs: list[tuple[str, int]], scale: float, seed: int) -> list[tuple[str, int, int]]:
    """Capture-like targets: 120-300 bp, sorted, non-overlapping, ~TARGETS_AT_SCALE_1 x scale of them."""
    rng = np.random.default_rng([seed, 7])
    total = sum(ln for (_, ln), c in zip(contigs, CONTIGS, strict=True) if c[3] > 0)
    n_all = int(TARGETS_AT_SCALE_1 * scale)
    out = []
    for (name, length), (*_, density) in zip(contigs, CONTIGS, strict=True):
        if density == 0 or length < 1000:
            continue
        n = max(1, round(n_all * length / total))
        starts = np.sort(rng.choice(length - 400, n, replace=False))
        sizes = rng.integers(120, 301, n)
        last_end = -1
        for s, z in zip(starts.tolist(), sizes.tolist(), strict=True):
            if s > last_end:
                out.append((name, s, s + z))
                last_end = s + z
    return out


def generate(case: Case, root: Path, seed: int) -> dict:
    d = root / case.name
    d.mkdir(parents=True, exist_ok=True)
    contigs = contig_lengths(case.scale)
    t0 = time.perf_counter()
    write_reference(d / "ref.fa", contigs, seed)
    subprocess.run(["samtools", "faidx", str(d / "ref.fa")], check=True)
    targets = make_targets(contigs, case.scale, seed)
    (d / "targets.bed").write_text(
        "".join(f"{c}\t{a}\t{b}\tt{i:05d}\n" for i, (c, a, b) in enumerate(targets))
    )
    t1 = time.perf_counter()
    bam = d / f"{case.name}.bam"
    tmp = d / f".{case.name}.bam.tmp"
    proc = subprocess.Popen(["samtools", "view", "-@2", "-b", "-o", str(tmp), "-"], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(bam_header(contigs, case, seed))
    n = generate_records(case, seed, proc.stdin.write)
    proc.stdin.close()
    if proc.wait():
        raise SystemExit(f"samtools view failed ({proc.returncode}) for {case.name}")
    tmp.rename(bam)
    t2 = time.perf_counter()
    subprocess.run(["samtools", "index", "-@2", str(bam)], check=True)
    t3 = time.perf_counter()
    info = {
        "case": case.name,
        "scale": case.scale,
        "records": n,
        "contigs": contigs,
        "targets": len(targets),
        "bam_bytes": bam.stat().st_size,
        "seconds": {"reference+targets": t1 - t0, "records+compress": t2 - t1, "index": t3 - t2},
        "seed": seed,
    }
    (d / "case.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def cmd_generate(args: argparse.Namespace) -> int:
    for case in selected(args.only):
        start = time.perf_counter()
        info = generate(case, args.dir, args.seed)
        print(
            f"{case.name}: {info['records']:,} records, {info['bam_bytes'] / 1e6:,.0f} MB, "
            f"{info['targets']} targets, {time.perf_counter() - start:.0f} s "
            f"({', '.join(f'{k} {v:.0f} s' for k, v in info['seconds'].items())}); load {load_text()}",
            flush=True,
        )
    return 0


def selected(only: str | None) -> list[Case]:
    if only is None:
        return list(CASES)
    names = only.split(",")
    unknown = set(names) - {c.name for c in CASES}
    if unknown:
        raise SystemExit(f"unknown case(s) {sorted(unknown)}; of {[c.name for c in CASES]}")
    return [c for c in CASES if c.name in names]


# ------------------------------------------------------------------------------------------------- run


@dataclass(frozen=True)
class Command:
    label: str
    argv: list[str]
    env: dict[str, str]
    stdin: bool = False  # the BAM on stdin
    report: str | None = None  # "-C" / "-t": writes a report to compare (out.json in the scratch dir)


def commands(samtools: str, real: Path | None, out: Path, bam: str) -> list[Command]:
    base = {**os.environ, "PYTHONPATH": str(ROOT)}
    base.pop("ALIGNBATCH_ENGINE_CPUS", None)
    base.pop("ALIGNBATCH_ENGINE_POOL", None)
    one = {**base, "ALIGNBATCH_ENGINE_CPUS": "1"}
    two = {**base, "ALIGNBATCH_ENGINE_CPUS": "2"}
    # the JIT kernels, on the thread pool they call for (what runs when no compiled build matches)
    two_jit = {**two, "ALIGNBATCH_ENGINE_AOT": "0"}
    c_opts, t_opts = ["-C"], ["-t", "targets.bed"]
    pin = ["taskset", "-c", "0"]

    def eng(label: str, opts: list[str], env: dict[str, str], pinned: bool, stdin: bool = False) -> Command:
        key = "-C" if opts == c_opts else "-t"
        src = ["-j", "bam"] if stdin else ["-i", bam]
        o = str(out / f"{label.replace(' ', '_').replace(',', '')}.json")
        return Command(label, [*(pin if pinned else []), *ENGINE, *opts, *src, "-o", o], env, stdin, key)

    cmds = [
        eng("engine -C, 1 core", c_opts, one, True),
        eng("engine -t, 1 core", t_opts, one, True),
        eng("engine -C, 2 cores", c_opts, two, False),
        eng("engine -C, 2 cores, JIT kernels", c_opts, two_jit, False),
        eng("engine -C, stdin, inflate threads", c_opts, one, False, stdin=True),
        eng("engine -t, 2 cores", t_opts, two, False),
    ]
    if real is not None:
        for key, opts in (("-C", c_opts), ("-t", t_opts)):
            o = str(out / f"alignstats{key}.json")
            cmds.append(
                Command(f"alignstats {key}", [str(real), *opts, "-i", bam, "-o", o], base, report=key)
            )
    cmds += [
        Command("samtools stats", [samtools, "stats", bam], base),
        Command("samtools flagstat -@1, 1 core", [*pin, samtools, "flagstat", "-@1", bam], base),
        Command("samtools flagstat -@2", [samtools, "flagstat", "-@2", bam], base),
    ]
    return cmds


def report_path(cmd: Command) -> Path:
    return Path(cmd.argv[cmd.argv.index("-o") + 1])


def compare_reports(engine: Path, real: Path, bam: str, size: int) -> dict:
    """Byte identity of an engine report with the real tool's; the differing keys if not."""
    a, b = engine.read_bytes(), real.read_bytes()
    # the stdin run names its input "-" with size 0, as the tool does for stdin
    a = a.replace(b'"InputFileName": "-"', b'"InputFileName": "%s"' % bam.encode())
    a = a.replace(b'"InputFileSize": 0,', b'"InputFileSize": %d,' % size)
    if a == b:
        return {"identical": True}
    ja, jb = json.loads(a), json.loads(b)
    diff = {k: [ja.get(k), jb.get(k)] for k in sorted(set(ja) | set(jb)) if ja.get(k) != jb.get(k)}
    return {"identical": False, "json_equal": ja == jb, "differing_keys": diff}


@dataclass
class Result:
    case: str
    label: str
    runs: list[Measure]
    loads: list[float]  # 1-minute load average at the start of each run

    @property
    def median(self) -> Measure:
        mid = sorted(self.runs, key=lambda m: m.wall)[len(self.runs) // 2]
        return Measure(
            statistics.median(m.wall for m in self.runs),
            mid.user,
            mid.sys,
            max(m.hwm_mb for m in self.runs),
            max(m.anon_mb for m in self.runs),
            max(m.file_mb for m in self.runs),
            max(m.exit_code for m in self.runs),
            max(m.maxrss_mb for m in self.runs),
            max(m.tree_anon_mb for m in self.runs),
        )

    def load_range(self) -> str:
        return f"{min(self.loads):.1f}-{max(self.loads):.1f}"


def run_case(
    case: Case, root: Path, repeat: int, samtools: str, real: Path | None
) -> tuple[list[Result], dict]:
    d = root / case.name
    bam = f"{case.name}.bam"
    info = json.loads((d / "case.json").read_text())
    tmp = Path(tempfile.mkdtemp(prefix=f"genome-scale-{case.name}-"))
    try:
        cmds = commands(samtools, real, tmp, bam)
        subprocess.run(["cat", str(d / bam)], stdout=subprocess.DEVNULL, check=False)  # page cache
        results = {c.label: Result(case.name, c.label, [], []) for c in cmds}
        for r in range(repeat):
            for c in cmds:
                results[c.label].loads.append(os.getloadavg()[0])
                m = measure(c.argv, d, c.env, d / bam if c.stdin else None, tree=True)
                results[c.label].runs.append(m)
                print(
                    f"  [{case.name} round {r + 1}/{repeat}] {c.label:<36} wall {m.wall:7.2f}  "
                    f"cpu {m.user + m.sys:7.2f}  VmHWM {m.hwm_mb:7.1f}  load {results[c.label].loads[-1]:.2f}"
                    f"{'  FAILED' if m.exit_code else ''}",
                    flush=True,
                )
        identity: dict[str, dict] = {}
        size = (d / bam).stat().st_size
        for c in cmds:
            if c.report and c.label.startswith("engine"):
                real_cmd = next((x for x in cmds if x.label == f"alignstats {c.report}"), None)
                if real_cmd is None:
                    continue
                identity[c.label] = compare_reports(report_path(c), report_path(real_cmd), bam, size)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    info["identity"] = identity
    return list(results.values()), info


def fit(rows: list[tuple[float, float, float]]) -> tuple[float, float, float] | None:
    """Least squares y = a + b * records (M) + c * genome (Mbp) over (records M, genome Mbp, y)."""
    if len({(r, g) for r, g, _ in rows}) < 3:
        return None
    x = np.array([[1.0, r, g] for r, g, _ in rows])
    y = np.array([v for *_, v in rows])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(coef[0]), float(coef[1]), float(coef[2])


def markdown(results: dict[str, list[Result]], infos: dict[str, dict]) -> list[str]:
    out = [
        "| case | records | longest contig | command | wall s | CPU s | VmHWM MiB | RssAnon MiB "
        "| tree RssAnon MiB | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rs in results.items():
        info = infos[name]
        longest = max(ln for _, ln in info["contigs"])
        for r in rs:
            m = r.median
            out.append(
                f"| {name} | {info['records'] / 1e6:.1f} M | {longest / 1e6:g} Mbp | {r.label} "
                f"| {m.wall:.2f} | {m.user + m.sys:.2f} | {m.hwm_mb:.0f} | {m.anon_mb:.0f} "
                f"| {m.tree_anon_mb:.0f} | {r.load_range()} |{' FAILED' if m.exit_code else ''}"
            )
    return out


def pivot(results: dict[str, list[Result]], what: str) -> list[str]:
    names = list(results)
    labels = [r.label for r in next(iter(results.values()))]
    out = [f"| {what} | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label in labels:
        cells = []
        for name in names:
            r = next((x for x in results[name] if x.label == label), None)
            if r is None:
                cells.append("-")
                continue
            m = r.median
            cells.append(
                f"{m.wall:.2f}"
                if what == "wall s"
                else f"{m.user + m.sys:.2f}"
                if what == "CPU s"
                else f"{m.hwm_mb:.0f} / {m.tree_anon_mb:.0f}"
            )
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out


def growth(results: dict[str, list[Result]], infos: dict[str, dict]) -> list[str]:
    lines = [
        "",
        "fit over the cases: y = a + b x records (M) + c x genome (Mbp); memory against the longest contig",
    ]
    labels = [r.label for r in next(iter(results.values()))]
    for label in labels:
        wall, cpu, mem = [], [], []
        for name, rs in results.items():
            r = next((x for x in rs if x.label == label), None)
            if r is None:
                continue
            info = infos[name]
            recs, genome = info["records"] / 1e6, sum(ln for _, ln in info["contigs"]) / 1e6
            m = r.median
            wall.append((recs, genome, m.wall))
            cpu.append((recs, genome, m.user + m.sys))
            mem.append((max(ln for _, ln in info["contigs"]) / 1e6, m.tree_anon_mb))
        fw, fc = fit(wall), fit(cpu)
        if fw is None or fc is None:
            continue
        xs = np.array([x for x, _ in mem])
        ys = np.array([y for _, y in mem])
        slope = float(np.polyfit(xs, ys, 1)[0]) if len(set(xs.tolist())) > 1 else float("nan")
        lines.append(
            f"  {label:<36} wall {fw[0]:5.2f} s + {fw[1]:5.2f} s/M records + {fw[2] * 100:5.2f} s/100 Mbp;  "
            f"CPU {fc[0]:5.2f} + {fc[1]:5.2f}/M + {fc[2] * 100:5.2f}/100 Mbp;  "
            f"tree RssAnon {slope * 1.048576:5.2f} B per base of the longest contig"
        )
    return lines


def cmd_run(args: argparse.Namespace) -> int:
    samtools = shutil.which("samtools")
    if samtools is None:
        raise SystemExit("samtools not found")
    real = args.alignstats if args.alignstats.exists() else None
    if real is None:
        print(f"{args.alignstats} not found: no real alignstats, no byte-identity check", file=sys.stderr)
    cases = selected(args.only)
    largest = max(cases, key=lambda c: (c.records, c.scale))
    print(f"genome scale: {[c.name for c in cases]} in {args.dir}; cpus={os.cpu_count()}; load {load_text()}")
    subprocess.run([*ENGINE, "-h"], env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.DEVNULL)
    results: dict[str, list[Result]] = {}
    infos: dict[str, dict] = {}
    start = time.perf_counter()
    for case in cases:
        n = args.largest_repeat if case is largest and args.largest_repeat else args.repeat
        print(f"{case.name}: repeat {n}, load {load_text()}", flush=True)
        results[case.name], infos[case.name] = run_case(case, args.dir, n, samtools, real)
    elapsed = time.perf_counter() - start
    lines = [
        f"genome scale, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {elapsed / 60:.1f} min; "
        f"median wall of --repeat {args.repeat} (largest {args.largest_repeat or args.repeat}), "
        f"CPU of that run, memory the maximum over the runs; load after {load_text()}",
        "",
        *markdown(results, infos),
        "",
        *pivot(results, "wall s"),
        "",
        *pivot(results, "CPU s"),
        "",
        *pivot(results, "VmHWM / tree RssAnon MiB"),
        *growth(results, infos),
        "",
        "byte-identical to the real alignstats (same options):",
    ]
    for name, info in infos.items():
        for label, res in info["identity"].items():
            verdict = (
                "identical" if res["identical"] else f"DIFFERENT: {json.dumps(res['differing_keys'])[:400]}"
            )
            lines.append(f"  {name:<12} {label:<36} {verdict}")
    print("\n".join(lines))
    doc = {
        "cases": infos,
        "results": {
            name: [
                {
                    "label": r.label,
                    "median": asdict(r.median),
                    "runs": [asdict(m) for m in r.runs],
                    "loads": r.loads,
                }
                for r in rs
            ]
            for name, rs in results.items()
        },
        "elapsed_s": elapsed,
        "cpus": os.cpu_count(),
    }
    path = args.json or args.dir / "genome_scale.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwrote {path}")
    return 0


# --------------------------------------------------------------------------------- where the time goes

PROFILED = """
import cProfile, sys
from worker.engine.cli import main
prof = cProfile.Profile()
prof.enable()
code = main(sys.argv[2:])
prof.disable()
prof.dump_stats(sys.argv[1])
sys.exit(code)
"""

# (category, function names matched as (file name, function)) and whether cumulative or own time counts
CATEGORIES = (
    ("BGZF inflate + CRC32 (libdeflate, in line on one core)", (("bgzf.py", "inflate_batch"),), "cum"),
    (
        "BGZF framing (Python: block headers, reads)",
        (("bgzf.py", "iter_blocks"), ("bgzf.py", "_block_size")),
        "own",
    ),
    ("kernel process_records (numba, nogil)", (("records.py", "process_records"),), "own"),
    ("the driver loop around the kernel (Engine._run_one)", (("engine.py", "_run_one"),), "own"),
    ("Engine.feed: per-chunk Python (carry, frombuffer, order warning)", (("engine.py", "feed"),), "own"),
    (
        "per-chromosome depth work (zeroing, prefix sum, histograms, targets)",
        (("engine.py", "_start_chromosome"), ("engine.py", "_finish_chromosome")),
        "cum",
    ),
    ("report (statistics, rendering, write)", (("run.py", "render_report"),), "cum"),
    (
        "imports (numpy, numba, pysam, the engine)",
        (("<frozen importlib._bootstrap>", "_find_and_load"),),
        "cum",
    ),
)


def profile_split(stats_path: Path) -> tuple[float, list[tuple[str, float]], list[str]]:
    import pstats

    st = pstats.Stats(str(stats_path))
    total = max(v[3] for v in st.stats.values())  # the outermost call's cumulative time
    split = []
    for name, funcs, which in CATEGORIES:
        t = 0.0
        for (file, _line, func), (_cc, _nc, tt, ct, _callers) in st.stats.items():
            if any(file.endswith(f) and func == fn for f, fn in funcs):
                t = max(t, ct) if which == "cum" else t + tt
        split.append((name, t))
    top = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:12]
    lines = [
        f"    {tt:7.2f} s own {ct:7.2f} s cum  {Path(f).name}:{ln} {fn}"
        for (f, ln, fn), (_, _, tt, ct, _) in top
    ]
    return total, split, lines


def cmd_profile(args: argparse.Namespace) -> int:
    from engine import write_bam  # benchmarks/engine.py: the tiny BAM of its fixed-runtime baseline

    case = selected(args.case)[0]
    d = args.dir / case.name
    bam = f"{case.name}.bam"
    info = json.loads((d / "case.json").read_text())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ALIGNBATCH_ENGINE_CPUS": "1"}
    env.pop("ALIGNBATCH_ENGINE_POOL", None)
    pin = ["taskset", "-c", "0"]
    out: dict = {"case": case.name, "load_before": os.getloadavg()}
    print(f"where the time goes: {case.name}, {info['records']:,} records; load {load_text()}")
    tmp = Path(tempfile.mkdtemp(prefix="genome-scale-profile-"))
    try:
        subprocess.run(["cat", str(d / bam)], stdout=subprocess.DEVNULL, check=False)
        tiny = tmp / "tiny.bam"
        write_bam(tiny, [("chr1", 1000)], 10)
        base = measure([*pin, *ENGINE, "-C", "-i", str(tiny), "-o", os.devnull], tmp, env, tree=True)
        print(
            f"  start-up (the same -C on a 10-read BAM, 1 core): wall {base.wall:.2f} s, CPU "
            f"{base.user + base.sys:.2f} s, RssAnon {base.anon_mb:.1f} MiB, VmHWM {base.hwm_mb:.1f} MiB"
        )
        out["startup"] = asdict(base)
        for label, opts in (("-C", ["-C"]), ("-t", ["-t", "targets.bed"])):
            plain = measure([*pin, *ENGINE, *opts, "-i", bam, "-o", os.devnull], d, env, tree=True)
            prof = tmp / f"{label}.prof"
            t0 = time.perf_counter()
            subprocess.run(
                [*pin, sys.executable, "-c", PROFILED, str(prof), *opts, "-i", bam, "-o", os.devnull],
                cwd=d,
                env=env,
                check=True,
            )
            wall_prof = time.perf_counter() - t0
            total, split, top = profile_split(prof)
            print(
                f"\n  engine {label}, 1 core: wall {plain.wall:.2f} s, CPU {plain.user + plain.sys:.2f} s "
                f"unprofiled; under cProfile {wall_prof:.2f} s wall, {total:.2f} s profiled; "
                f"load {load_text()}"
            )
            rest = total
            for name, t in split:
                print(f"    {t:7.2f} s  {100 * t / total:5.1f} %  {name}")
                rest -= t
            print(f"    {rest:7.2f} s  {100 * rest / total:5.1f} %  other: numba's first dispatch, options")
            print("   top functions by own time:")
            print("\n".join(top))
            out[label] = {"plain": asdict(plain), "profiled_s": total, "split": dict(split), "other": rest}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    longest = max(ln for _, ln in info["contigs"])
    second = sorted((ln for _, ln in info["contigs"]), reverse=True)[1]
    fixed = out["startup"]["anon_mb"]
    mib = 1024 * 1024
    print(
        f"\n  memory model (private): start-up {fixed:.1f} MiB + depth array 4 B x (longest + 1) = "
        f"{4 * (longest + 1) / mib:.1f} MiB -> {fixed + 4 * (longest + 1) / mib:.1f} MiB on one core "
        f"(measured {out['-C']['plain']['anon_mb']:.1f}); two workers hold two arrays at once "
        f"(the two largest contigs first: + {4 * (second + 1) / mib:.1f} MiB)"
    )
    out["model"] = {"fixed_anon_mb": fixed, "depth_array_mb": 4 * (longest + 1) / mib}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="step", required=True)
    g = sub.add_parser("generate", help="write the cases (outside the repository)")
    g.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    g.add_argument("--only", default=None, help=f"comma-separated, of {[c.name for c in CASES]}")
    g.add_argument("--seed", type=int, default=17)
    r = sub.add_parser("run", help="measure every command on every case")
    r.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    r.add_argument("--only", default=None)
    r.add_argument("--repeat", type=int, default=3)
    r.add_argument("--largest-repeat", type=int, default=None, help="repeat for the largest case")
    r.add_argument(
        "--json", type=Path, default=None, help="default: DIR/genome_scale.json (outside the repo)"
    )
    r.add_argument(
        "--alignstats",
        type=Path,
        default=ROOT / ".tools" / "alignstats" / "alignstats",
        help="the real alignstats (scripts/build-alignstats.sh builds it there)",
    )
    p = sub.add_parser("profile", help="where the time goes, for one case")
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    p.add_argument("--case", default=max(CASES, key=lambda c: c.records).name)
    p.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.step == "generate":
        return cmd_generate(args)
    if args.step == "profile":
        return cmd_profile(args)
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
