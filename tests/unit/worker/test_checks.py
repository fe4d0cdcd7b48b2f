"""Input checks on the small damaged cases in tests/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import BadInput, UsageError
from worker import checks
from worker.tools import parse_command


def _head_tail(path: Path) -> tuple[bytes, bytes]:
    data = path.read_bytes()
    return data[:65536], data[-checks.TAIL_BYTES :]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("i_edge.bam", "bam"), ("i_edge.sam", "sam"), ("h_not_bam.bam", "unknown"), ("ref.fa", "unknown")],
)
def test_detect_format(data_dir: Path, name: str, fmt: str) -> None:
    assert checks.detect_format((data_dir / name).read_bytes()[:65536]) == fmt


def test_eof_block(data_dir: Path) -> None:
    for ok in ("i_edge.bam", "h_source.bam", "h_corrupt_middle.bam"):
        head, tail = _head_tail(data_dir / ok)
        checks.check_eof(ok, checks.detect_format(head), tail)
    for bad in ("h_no_eof.bam", "h_truncated.bam"):
        head, tail = _head_tail(data_dir / bad)
        with pytest.raises(BadInput, match=f"{bad}: BAM is truncated"):
            checks.check_eof(bad, checks.detect_format(head), tail)
    with pytest.raises(BadInput, match="CRAM is truncated"):
        checks.check_eof("x.cram", "cram", b"\0" * 38)


def test_header_checks(data_dir: Path) -> None:
    info = checks.read_header("i_edge.bam", data_dir / "i_edge.bam", "bam")
    assert "ctgA" in info.contigs
    assert checks.read_header("g_empty.bam", data_dir / "g_empty.bam", "bam").contigs
    with pytest.raises(BadInput, match=r"g_nosq.bam: header has no @SQ"):
        checks.read_header("g_nosq.bam", data_dir / "g_nosq.bam", "bam")
    with pytest.raises(BadInput, match="not a BAM, CRAM or SAM"):
        checks.read_header("h_not_bam.bam", data_dir / "h_not_bam.bam", "unknown")


def test_header_of_a_prefix_only(data_dir: Path, tmp_path: Path) -> None:
    """A streamed input is checked on its first bytes: a prefix must be enough."""
    prefix = tmp_path / "p.bam"
    prefix.write_bytes((data_dir / "h_source.bam").read_bytes()[:200_000])
    assert checks.read_header("s3://b/h.bam", prefix, "bam").contigs


def test_cram_reference() -> None:
    checks.check_cram_reference("x.bam", "bam", False)
    checks.check_cram_reference("x.cram", "cram", True)
    with pytest.raises(BadInput, match=r"x.cram: CRAM input needs a reference"):
        checks.check_cram_reference("x.cram", "cram", False)


def test_target_bed(data_dir: Path, tmp_path: Path) -> None:
    contigs = ("chr1", "chr2", "chr3", "chrM", "chrU")
    checks.check_target_bed("targets.bed", data_dir / "targets.bed", contigs)
    checks.check_target_bed("quirky", data_dir / "targets_quirky.bed", contigs)
    with pytest.raises(BadInput, match=r"targets_end0.bed: line 1 .*end coordinate 0"):
        checks.check_target_bed("targets_end0.bed", data_dir / "targets_end0.bed", contigs)
    ws = tmp_path / "ws.bed"
    ws.write_text("chr1\t10\t20\n  chr1\t100\t200\n")
    with pytest.raises(BadInput, match=r"ws.bed: line 2 starts with whitespace"):
        checks.check_target_bed("ws.bed", ws, contigs)
    noend = tmp_path / "noend.bed"
    noend.write_text("chrZ\t0\t0\nchr2\t5\n")  # unknown contig ignored (as alignstats does); chr2 has no end
    with pytest.raises(BadInput, match="line 2 \\(chr2\\)"):
        checks.check_target_bed("noend.bed", noend, contigs)


def test_capture_disabled_with_targets_is_usage() -> None:
    with pytest.raises(UsageError, match=r"-C .* -t"):
        checks.check_usage(parse_command(["alignstats", "-C", "-t", "t.bed", "-i", "x.bam"]))
    checks.check_usage(parse_command(["alignstats", "-t", "t.bed", "-i", "x.bam"]))
    checks.check_usage(parse_command(["mytool", "-C", "-t", "x"]))
