"""The byte ranges of an indexed BAM that one shard child reads, from the index and the shard plan (pure).

A shard child of an S3 object stages a sparse file of the object's full size holding only these ranges
(worker/fanout.py), and the engine runs on it unchanged. So the ranges must cover every byte the
engine's shard run reads (worker/engine/shard_run.py), and nothing more is fetched:

- the header: from 0 to where its BGZF blocks end. The index gives the first record's virtual offset;
  when that record starts inside a block (the header's tail shares it) the whole block is needed;
- each contig of the shard (and the '*' records when the shard holds them): the BGZF blocks between the
  virtual offsets of the contig's index pseudo-bin. The block holding the end offset is read whole
  (ranges.range_chunks inflates it and keeps its head); the '*' records run to the end of the file;
- the 28-byte BGZF end-of-file block (the engine refuses a BAM without it before reading ranges).

A block's size is only known once its header is read; a block is at most 65,536 bytes (BSIZE, the
total size minus 1, is a uint16; that includes its 18-byte header and 8-byte footer), so a block whose
start is known is fetched as [start, start + 65,536), cut at the object's end. Over-fetching up to
64 KiB per contig costs less than a round trip to learn the exact size first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.errors import UsageError
from worker.engine.bamindex import BamIndex
from worker.engine.shardplan import Piece, Shard, pieces_from_index

MAX_BLOCK_BYTES = 1 << 16
EOF_BLOCK_BYTES = 28


class CannotShard(UsageError):
    """The input cannot be split as asked: exit 64 (USAGE) like the engine's own refusal, one line
    starting `cannot shard:`, so the controller falls back to one job."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot shard: {reason}")
        self.reason = reason


@dataclass(frozen=True, order=True)
class ByteRange:
    start: int
    end: int  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start

    def as_list(self) -> list[int]:
        return [self.start, self.end]


def coalesce(ranges: Iterable[ByteRange]) -> list[ByteRange]:
    """Sorted, with overlapping or touching ranges joined and empty ones dropped."""
    out: list[ByteRange] = []
    for r in sorted(r for r in ranges if r.end > r.start):
        if out and r.start <= out[-1].end:
            if r.end > out[-1].end:
                out[-1] = ByteRange(out[-1].start, r.end)
        else:
            out.append(r)
    return out


def _block_from(start: int, size: int) -> ByteRange:
    return ByteRange(start, min(size, start + MAX_BLOCK_BYTES))


def header_range(first_record: int, size: int) -> ByteRange:
    """[0, end of the header's blocks): to the first record's block, or through it when the record
    starts inside it."""
    block, within = first_record >> 16, first_record & 0xFFFF
    return ByteRange(0, _block_from(block, size).end if within else block)


def piece_range(piece: Piece, size: int) -> ByteRange:
    """The compressed bytes holding one piece: its first block to its end block, that one whole."""
    begin = piece.begin >> 16
    if piece.end is None:
        return ByteRange(begin, size)
    block, within = piece.end >> 16, piece.end & 0xFFFF
    return ByteRange(begin, _block_from(block, size).end if within else block)


def shard_ranges(index: BamIndex, shard: Shard, size: int) -> list[ByteRange]:
    """Every byte range shard `shard` of the plan reads from a BAM of `size` bytes with this index.

    Raises CannotShard where the engine would refuse the shard (an index whose ranges leave gaps, no
    placed records): the worker must not stage what the engine then refuses.
    """
    if size < EOF_BLOCK_BYTES:
        raise CannotShard(f"a {size}-byte file cannot be a BAM with its end-of-file block")
    pieces, why = pieces_from_index(index, shard.tids, shard.unplaced)
    if pieces is None:
        raise CannotShard(why)
    first = next(span.begin for span in index.spans if span is not None)  # pieces_from_index: one exists
    # Every block the index names starts before the EOF block; one that does not is a stale index or
    # the index of another file (the engine would fail on it; staging must not hide that).
    last_block = size - EOF_BLOCK_BYTES
    for offset in [first, *(o for p in pieces for o in (p.begin, p.end) if o is not None)]:
        if offset >> 16 > last_block:
            raise CannotShard(f"the index points at byte {offset >> 16}, past the file's {size} bytes")
    wanted = [header_range(first, size), *(piece_range(p, size) for p in pieces)]
    wanted.append(ByteRange(last_block, size))
    return coalesce(wanted)
