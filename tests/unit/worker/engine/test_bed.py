"""BED parsing quirks of alignstats (§4.7): strtol from the raw line offset, clipping, no sorting."""

from __future__ import annotations

from worker.engine.bed import parse_bed, strtol

NAMES = {"chr1": 0, "chrM": 1}
LENGTHS = [1000, 100]


def parse(text: str):
    return parse_bed("t.bed", text.encode(), NAMES, LENGTHS)


def test_strtol_like_c() -> None:
    assert strtol(b"  42abc", 0) == (42, 4)
    assert strtol(b"-7", 0) == (-7, 2)
    assert strtol(b"0x400", 0) == (0, 1)  # base 10: hex parses as 0
    assert strtol(b"abc", 0) == (0, 0)
    assert strtol(b"", 0) == (0, 0)
    assert strtol(b"chr1\t100\t200", 4) == (100, 8)  # from the offset after the contig, as BED lines use it
    assert strtol(b"x", 0) == (0, 0)
    assert strtol(b"  -5z", 0) == (-5, 4)


def test_plain_lines_stored_inclusive_in_file_order() -> None:
    bed = parse("chr1\t500\t600\nchr1 100 200\n")
    assert [(line.start, line.end) for line in bed.lines] == [(500, 599), (100, 199)]


def test_headers_comments_unknown_contigs_skipped() -> None:
    bed = parse("track name=x\nbrowser position chr1\n# c\n\nchrZ\t1\t2\nchr1\t1\t2\n")
    assert [(line.contig, line.start, line.end) for line in bed.lines] == [("chr1", 1, 1)]


def test_leading_whitespace_shifts_the_number_parse() -> None:
    # contig "chr1" has length 4: parsing starts at raw offset 4 ("1\t100\t200")
    assert [(line.start, line.end) for line in parse(" chr1\t100\t200\n").lines] == [(1, 99)]
    # two spaces: offset 4 is inside the name -> both numbers 0, stored end -1 (the crash case)
    assert [(line.start, line.end) for line in parse("  chrM\t10\t20\n").lines] == [(0, -1)]


def test_end_clipped_to_contig_with_warning_and_negative_start_zeroed() -> None:
    bed = parse("chrM\t50\t170\nchr1\t-5\t10\n")
    assert [(line.start, line.end) for line in bed.lines] == [(50, 99), (0, 9)]
    assert (
        bed.warnings[0] == "[AlignStats WARNING] BED end coordinate greater than maximum allowed: 170 > 100"
    )
    assert len(bed.warnings) == 2


def test_missing_numbers_are_zero() -> None:
    assert [(line.start, line.end) for line in parse("chr1\n").lines] == [(0, -1)]


def test_by_tid_groups_per_contig() -> None:
    starts, ends = parse("chrM\t1\t5\nchr1\t3\t9\nchrM\t0\t2\n").by_tid(2)[1]
    assert starts.tolist() == [1, 0]
    assert ends.tolist() == [4, 1]
