"""A BAM index (.bai or .csi) read for its per-contig byte ranges and record counts.

Contig-parallel runs and shards read each contig's records straight from the BGZF bytes between two
virtual offsets, without HTSlib: samtools writes, per contig, a pseudo-bin holding the virtual offsets of
its first and past-its-last record and its mapped/unmapped record counts. The counts are also what the
shard planner balances on, and the check that a range held exactly the records the index promised.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

BAI_PSEUDO_BIN = 37450
# A .csi of a human genome inflates to a few MiB; far more is not an index anyone wrote.
MAX_INFLATED = 512 << 20


@dataclass(frozen=True)
class ContigSpan:
    tid: int
    begin: int  # virtual offset of the contig's first record
    end: int  # virtual offset just past its last record
    mapped: int
    unmapped: int

    @property
    def records(self) -> int:
        return self.mapped + self.unmapped


@dataclass(frozen=True)
class BamIndex:
    spans: tuple[ContigSpan | None, ...]  # by tid; None for a contig without records
    unplaced_begin: int  # virtual offset after every placed record: the '*' records start here
    unplaced: int | None  # records without a position (the index's n_no_coor), None when not stored

    def records(self, tid: int) -> int:
        span = self.spans[tid]
        return span.records if span is not None else 0


class BadIndexError(Exception):
    """The index is missing, unreadable, or lacks the per-contig pseudo-bins."""


def index_path(bam: str) -> str | None:
    """The index HTSlib would pick for a local BAM: x.bam.bai, x.bai, x.bam.csi."""
    stem = os.path.splitext(bam)[0]
    for p in (bam + ".bai", stem + ".bai", bam + ".csi"):
        if os.path.exists(p):
            return p
    return None


def read_index(path: str, n_ref: int | None = None) -> BamIndex:
    """Parse the index; with `n_ref` (the BAM header's contig count) also check it matches."""
    with open(path, "rb") as fh:
        data = fh.read()
    return parse_index(data, path, n_ref)


def parse_index(
    data: bytes, path: str, n_ref: int | None = None, max_inflated: int = MAX_INFLATED
) -> BamIndex:
    """An index's bytes (named `path` in errors); the controller reads them from the store to plan a
    fan-out. Damage raises BadIndexError, struct.error, IndexError or ValueError."""
    if data[:2] == b"\x1f\x8b":  # CSI is BGZF-compressed
        data = _inflate(data, path, max_inflated)
    if data[:4] == b"BAI\x01":
        return _parse(data, 8, struct.unpack_from("<i", data, 4)[0], n_ref, BAI_PSEUDO_BIN, csi=False)
    if data[:4] == b"CSI\x01":
        _min_shift, depth, l_aux = struct.unpack_from("<iii", data, 4)
        # HTSlib's own limit on min_shift + 3 * depth is 64 bits of position; a depth past it would only
        # make the pseudo-bin number below a huge integer
        if not 0 <= depth <= 20 or not 0 <= l_aux <= len(data):
            raise BadIndexError(f"{path}: a CSI header with depth {depth} and {l_aux} aux bytes")
        o = 16 + l_aux
        pseudo = ((1 << ((depth + 1) * 3)) - 1) // 7 + 1
        return _parse(data, o + 4, struct.unpack_from("<i", data, o)[0], n_ref, pseudo, csi=True)
    raise BadIndexError(f"{path}: not a BAI or CSI index")


def _inflate(data: bytes, path: str, limit: int) -> bytes:
    """Every gzip member of `data`, refusing more than `limit` bytes of output: an index is user data,
    and a small crafted .csi could otherwise inflate to all of the controller's memory."""
    out = bytearray()
    view = memoryview(data)
    while view:
        d = zlib.decompressobj(wbits=31)
        try:
            out += d.decompress(view, limit - len(out) + 1)
        except zlib.error as exc:
            raise BadIndexError(f"{path}: damaged compressed data ({exc})") from None
        if len(out) > limit or d.unconsumed_tail:
            raise BadIndexError(f"{path}: inflates to more than {limit >> 20} MiB; not an index of a BAM")
        if not d.eof:
            raise BadIndexError(f"{path}: a truncated gzip member")
        view = view[len(view) - len(d.unused_data) :]
    return bytes(out)


def _parse(data: bytes, o: int, n_idx_ref: int, n_ref: int | None, pseudo: int, *, csi: bool) -> BamIndex:
    if n_ref is not None and n_idx_ref != n_ref:
        raise BadIndexError(f"the index lists {n_idx_ref} contigs, the header {n_ref}")
    # Every count is checked against the bytes left before it is used: a crafted index of a few bytes
    # must fail at once, not loop over 2**31 contigs or move the offset backwards.
    size = len(data)

    def count(value: int, each: int, what: str) -> int:
        if value < 0 or value * each > size - o:
            raise BadIndexError(f"{value} {what} do not fit in the index's {size} bytes")
        return value

    count(n_idx_ref, 4 if csi else 8, "contigs")
    spans: list[ContigSpan | None] = []
    last = 0
    for tid in range(n_idx_ref):
        (n_bin,) = struct.unpack_from("<i", data, o)
        o += 4
        count(n_bin, 16 if csi else 8, f"bins of contig {tid}")
        span = None
        for _ in range(n_bin):
            if csi:
                bin_id, _loff, n_chunk = struct.unpack_from("<IQi", data, o)
                o += 16
            else:
                bin_id, n_chunk = struct.unpack_from("<Ii", data, o)
                o += 8
            count(n_chunk, 16, f"chunks of contig {tid}")
            chunks = struct.unpack_from(f"<{2 * n_chunk}Q", data, o)
            o += 16 * n_chunk
            if bin_id == pseudo and n_chunk == 2:
                span = ContigSpan(tid, chunks[0], chunks[1], chunks[2], chunks[3])
                last = max(last, chunks[1])
            else:
                last = max([last, *chunks[1::2]])
        if not csi:
            (n_intv,) = struct.unpack_from("<i", data, o)
            o += 4
            o += 8 * count(n_intv, 8, f"linear-index windows of contig {tid}")
        if n_bin and span is None:
            raise BadIndexError(f"contig {tid} has no pseudo-bin (an index not written by samtools/HTSlib)")
        spans.append(span)
    unplaced = struct.unpack_from("<Q", data, o)[0] if o + 8 <= len(data) else None
    return BamIndex(tuple(spans), last, unplaced)
