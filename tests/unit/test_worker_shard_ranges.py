"""The byte ranges a shard child fetches (pure: index + plan + shard -> ranges), and the ranged spans."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from worker.engine.bamindex import BamIndex, ContigSpan, read_index
from worker.engine.shardplan import Shard, plan_from_index
from worker.shard_ranges import (
    EOF_BLOCK_BYTES,
    MAX_BLOCK_BYTES,
    ByteRange,
    CannotShard,
    coalesce,
    shard_ranges,
)
from worker.transfer.spans import plan_range_spans

DATA = Path(__file__).resolve().parents[1] / "data"
SIZE = 10_000_000


def v(block: int, within: int = 0) -> int:
    """A BGZF virtual offset: compressed block offset << 16 | offset in the block."""
    return block << 16 | within


# Three contigs abutting in the file; the header's tail shares the first record's block (within 120).
INDEX = BamIndex(
    spans=(
        ContigSpan(0, v(1_000, 120), v(3_000_000, 500), 900, 1),
        ContigSpan(1, v(3_000_000, 500), v(6_000_000, 0), 500, 0),
        None,  # a contig without records
        ContigSpan(3, v(6_000_000, 0), v(9_000_000, 40), 300, 2),
    ),
    unplaced_begin=v(9_000_000, 40),
    unplaced=7,
)


def shard(tids: tuple[int, ...], unplaced: bool = False) -> Shard:
    return Shard(0, tids, unplaced, 0)


def test_a_contig_in_the_middle_header_its_blocks_and_the_eof_block() -> None:
    ranges = shard_ranges(INDEX, shard((1,)), SIZE)
    assert ranges == [
        ByteRange(0, 1_000 + MAX_BLOCK_BYTES),  # the header, through the block its tail shares
        # contig 1 starts inside block 3,000,000 and ends exactly at block 6,000,000 (nothing of it)
        ByteRange(3_000_000, 6_000_000),
        ByteRange(SIZE - EOF_BLOCK_BYTES, SIZE),
    ]
    assert sum(r.length for r in ranges) < SIZE


def test_the_end_offsets_block_is_fetched_whole_and_the_unplaced_records_run_to_the_end() -> None:
    # contig 0 ends inside block 3,000,000 (and starts in the header's last block: one range with it)
    assert shard_ranges(INDEX, shard((0,)), SIZE)[0] == ByteRange(0, 3_000_000 + MAX_BLOCK_BYTES)
    # '*' starts inside the block contig 3 ends in, and runs to the end of the file (EOF block included)
    ranges = shard_ranges(INDEX, shard((3,), unplaced=True), SIZE)
    assert ranges == [ByteRange(0, 1_000 + MAX_BLOCK_BYTES), ByteRange(6_000_000, SIZE)]


def test_neighbouring_contigs_coalesce_and_blocks_stop_at_the_file_end() -> None:
    ranges = shard_ranges(INDEX, shard((0, 1)), SIZE)
    assert ranges == [ByteRange(0, 6_000_000), ByteRange(SIZE - EOF_BLOCK_BYTES, SIZE)]
    # a block whose start is near the end is cut at the object's size, never past it
    small = 9_000_000 + 30_000
    assert shard_ranges(INDEX, shard((3,)), small)[-1] == ByteRange(6_000_000, small)


def test_header_ending_on_a_block_boundary_is_fetched_without_the_next_block() -> None:
    index = BamIndex((ContigSpan(0, v(5_000), v(8_000, 10), 3, 0),), v(8_000, 10), 0)
    assert shard_ranges(index, shard(()), 100_000)[0] == ByteRange(0, 5_000)  # an empty shard: header + EOF
    assert shard_ranges(index, shard(()), 100_000)[1] == ByteRange(100_000 - EOF_BLOCK_BYTES, 100_000)


def test_what_the_engine_would_refuse_is_refused_before_staging() -> None:
    gap = BamIndex((ContigSpan(0, v(100), v(200), 1, 0), ContigSpan(1, v(300), v(400), 1, 0)), v(400), 0)
    with pytest.raises(CannotShard, match="cannot shard: index ranges of contig 1 do not follow"):
        shard_ranges(gap, shard((1,)), 1_000)
    with pytest.raises(CannotShard, match="cannot shard: no placed records"):
        shard_ranges(BamIndex((None, None), 0, 5), shard((), unplaced=True), 1_000)
    with pytest.raises(CannotShard, match="past the file's"):
        shard_ranges(INDEX, shard((3,)), 7_000_000)  # a stale index or a different object
    with pytest.raises(CannotShard) as exc:
        shard_ranges(INDEX, shard((0,)), 10)
    assert exc.value.exit_code == 64


def test_coalesce_sorts_joins_touching_and_drops_empty() -> None:
    got = coalesce(
        [ByteRange(50, 60), ByteRange(0, 10), ByteRange(10, 20), ByteRange(5, 8), ByteRange(30, 30)]
    )
    assert got == [ByteRange(0, 20), ByteRange(50, 60)]


def test_a_plan_over_a_real_index_covers_every_contig_once(tmp_path: Path) -> None:
    """h_source.bam: every shard of every plan reads a prefix of the file (header) and the EOF block,
    and the shards' contig ranges together cover the records' bytes exactly once."""
    bam = DATA / "h_source.bam"
    index = read_index(str(DATA / "h_source.bam.bai"))
    size = bam.stat().st_size
    for n in (1, 2, 5):
        plan = plan_from_index(index, n)
        for s in plan:
            ranges = shard_ranges(index, s, size)
            assert ranges[0].start == 0 and ranges[-1].end == size
            assert all(a.end < b.start for a, b in itertools.pairwise(ranges))


def test_range_spans_split_each_range_and_never_cross_a_hole() -> None:
    spans = plan_range_spans([(0, 10), (100, 125)], 10)
    assert [(s.start, s.end) for s in spans] == [(0, 10), (100, 110), (110, 120), (120, 125)]
    assert [s.index for s in spans] == [0, 1, 2, 3] and all(s.pos == s.start for s in spans)
