"""Records HTSlib refuses (issue #15, finding 5): the engine answers exit 65 naming the record.

HTSlib's `bam_read1`/`sam_read1` reject a record whose `l_read_name` is 0, whose refID or next_refID is
outside [-1, number of @SQ lines), or that is mapped with a CIGAR whose query length differs from a
non-zero `l_seq`. The engine used to accept all of them (and, with coverage on, died of an IndexError,
exit 70, on an out-of-range refID). The BAMs are written by hand (tests/support/alignments.py), since
pysam refuses to write such records. With the real tool built, `test_real_tool_on_bad_record` records
what alignstats does on the same files (docs/engine.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.alignments import raw_record, write_raw_bam
from tests.support.oracle import OracleUnavailable, find_or_build, run_engine

CONTIGS = (("c0", 1000), ("c1", 500))
GOOD = [raw_record(name=b"a", pos=10), raw_record(name=b"b", pos=20)]

# name -> (the bad record, what the error line says about it)
BAD = {
    "name_length_0": (raw_record(pos=30, l_read_name=0), "read name length 0"),
    "tid_past_header": (raw_record(tid=2, pos=30), "reference id 2 outside the header's 2 contigs"),
    "tid_below_minus_1": (raw_record(tid=-2, pos=30), "reference id -2 outside the header's 2 contigs"),
    "mtid_past_header": (raw_record(pos=30, mtid=7, mpos=5), "mate reference id 7 outside"),
    "cigar_longer_than_seq": (raw_record(pos=30, cigar="12M"), "CIGAR and sequence lengths differ"),
    "cigar_shorter_than_seq": (raw_record(pos=30, cigar="4M2D5M"), "CIGAR and sequence lengths differ"),
}


def _bam(tmp_path: Path, bad: bytes) -> Path:
    path = tmp_path / "in.bam"
    write_raw_bam(path, CONTIGS, [*GOOD, bad, raw_record(name=b"z", tid=1, pos=5)])
    return path


# alignment + WGS coverage, coverage only, alignment only (capture needs -t), and the two-thread kernel
OPTION_SETS = {"aln_wgs": ["-C"], "wgs": ["-A", "-C"], "aln": ["-C", "-W"], "p": ["-C", "-p"]}


@pytest.mark.parametrize("options", list(OPTION_SETS.values()), ids=list(OPTION_SETS))
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_record_exit_65(tmp_path: Path, case: str, options: list[str]) -> None:
    record, words = BAD[case]
    _bam(tmp_path, record)
    out = run_engine([*options, "-i", "in.bam", "-o", "report.json"], tmp_path, report="report.json")
    assert out.exit_code == 65, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("[alignbatch-alignstats ERROR] in.bam: malformed BAM record (number 3: ")
    assert words in lines[0]
    assert not (tmp_path / "report.json").exists()  # no partial report left behind


def test_bad_record_on_stdin(tmp_path: Path) -> None:
    bam = _bam(tmp_path, BAD["tid_past_header"][0])
    out = run_engine(["-C", "-o", "report.json"], tmp_path, report="report.json", stdin=bam)
    assert out.exit_code == 65
    assert "-: malformed BAM record (number 3: reference id 2" in out.stderr


# Records HTSlib lets through: the CIGAR check skips unmapped records and a SEQ of '*' (l_seq 0).
ACCEPTED = {
    "unmapped_cigar_mismatch": raw_record(flag=4, pos=30, cigar="12M"),
    "no_seq_with_cigar": raw_record(pos=30, cigar="12M", seq=""),
    "mate_unplaced": raw_record(pos=30, mtid=-1, mpos=-1),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_records_htslib_accepts(tmp_path: Path, case: str) -> None:
    _bam(tmp_path, ACCEPTED[case])
    out = run_engine(["-C", "-i", "in.bam", "-o", "report.json"], tmp_path, report="report.json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.report)["TotalRecords"] == 4


# What alignstats v0.11 reports (TotalRecords of the 4 written): its read loop (`sam_read1(...) >= 0`)
# ends a read section at a refused record and goes on with the next one, so a record HTSlib read
# completely and then refused (CIGAR, refID, next_refID) is silently dropped; `l_read_name` 0 is refused
# after the 32 fixed bytes only, the next "record" starts inside it and reading stops there.
REAL_TOTAL = {"name_length_0": 2} | {case: 3 for case in BAD if case != "name_length_0"}


@pytest.mark.parametrize("case", sorted(BAD) + sorted(ACCEPTED))
def test_real_tool_on_bad_record(tmp_path: Path, case: str) -> None:
    """The engine's exit 65 is a deliberate difference: the real tool exits 0 without the record."""
    try:
        oracle = find_or_build()
    except OracleUnavailable as exc:
        pytest.skip(str(exc))
    bad = case in BAD
    _bam(tmp_path, BAD[case][0] if bad else ACCEPTED[case])
    argv = ["-C", "-i", "in.bam", "-o", "report.json"]
    real = oracle.run(argv, tmp_path, report="report.json", timeout=30)
    assert real.exit_code == 0, real.stderr
    assert json.loads(real.report)["TotalRecords"] == (REAL_TOTAL[case] if bad else 4)
    if not bad:
        assert run_engine(argv, tmp_path, report="report.json").report == real.report


def test_bad_record_through_htslib_names_it(tmp_path: Path) -> None:
    """Inputs read through pysam (here: SAM text) fail in HTSlib itself; the line still names the record."""
    sam = "@HD\tVN:1.6\tSO:coordinate\n@SQ\tSN:c0\tLN:1000\n" + "".join(
        f"{name}\t0\tc0\t{pos}\t60\t{cigar}\t*\t0\t0\tACGTACGTAC\t*\n"
        for name, pos, cigar in (("a", 11, "10M"), ("b", 21, "12M"), ("c", 31, "10M"))
    )
    (tmp_path / "in.sam").write_text(sam)
    out = run_engine(["-C", "-i", "in.sam", "-o", "report.json"], tmp_path, report="report.json")
    assert out.exit_code == 65
    assert "in.sam: unreadable alignment data at record 2 (" in out.stderr


def test_bad_record_with_regions(tmp_path: Path) -> None:
    """-r reads through HTSlib's iterator: pysam's HTSlib refuses the record there too (exit 65). The
    index is that of a twin file with the same layout, since samtools refuses to index the bad one."""
    import pysam

    twin = tmp_path / "twin.bam"
    write_raw_bam(twin, CONTIGS, [*GOOD, raw_record(pos=30), raw_record(name=b"z", pos=40)])
    pysam.index(str(twin))
    write_raw_bam(
        tmp_path / "in.bam", CONTIGS, [*GOOD, raw_record(pos=30, mtid=9), raw_record(name=b"z", pos=40)]
    )
    (tmp_path / "twin.bam.bai").rename(tmp_path / "in.bam.bai")
    (tmp_path / "regions.bed").write_text("c0\t0\t1000\n")
    argv = ["-C", "-r", "regions.bed", "-i", "in.bam", "-o", "report.json"]
    out = run_engine(argv, tmp_path, report="report.json")
    assert out.exit_code == 65
    assert "in.bam: unreadable alignment data at record 3 (" in out.stderr


@pytest.mark.parametrize(("n_before", "total"), [(1023, 1025), (1024, 1024)])
def test_real_tool_stops_when_the_refused_record_starts_a_section(
    tmp_path: Path, n_before: int, total: int
) -> None:
    """The real tool drops a refused record, unless it is the first of a 1024-record read section: that
    section comes back empty and its read loop ends (the 2 records after it are lost too)."""
    try:
        oracle = find_or_build()
    except OracleUnavailable as exc:
        pytest.skip(str(exc))
    recs = [raw_record(name=b"a%d" % i, pos=10 + i) for i in range(n_before)]
    recs += [raw_record(tid=3, pos=5000), raw_record(name=b"z", pos=5001), raw_record(name=b"y", pos=5002)]
    write_raw_bam(tmp_path / "in.bam", (("c0", 100000),), recs)
    argv = ["-C", "-i", "in.bam", "-o", "report.json"]
    real = oracle.run(argv, tmp_path, report="report.json", timeout=30)
    assert (real.exit_code, json.loads(real.report)["TotalRecords"]) == (0, total)
    ours = run_engine(argv, tmp_path, report="report.json")
    assert ours.exit_code == 65
    assert f"malformed BAM record (number {n_before + 1}: reference id 3" in ours.stderr
