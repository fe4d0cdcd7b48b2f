"""alignbatch-index on real files: identical to samtools' index, clear errors otherwise."""

from __future__ import annotations

import shutil
from pathlib import Path

import pysam
import pytest

from worker.indexer import main


def test_bam_index_matches_reference(data_dir: Path, tmp_path: Path) -> None:
    bam = tmp_path / "h.bam"
    shutil.copy(data_dir / "h_source.bam", bam)
    assert main(["-i", str(bam)]) == 0
    assert (tmp_path / "h.bam.bai").read_bytes() == (data_dir / "h_source.bam.bai").read_bytes()
    assert (tmp_path / "h.bam.bai").stat().st_mode & 0o044 == bam.stat().st_mode & 0o044  # umask, not 0600
    assert main(["-i", str(bam), "-o", str(tmp_path / "sub" / "x.csi")]) == 0
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["x.csi"]


def test_cram_index_needs_no_reference(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cram = tmp_path / "h.cram"
    with pysam.AlignmentFile(str(data_dir / "i_edge.bam")) as src:
        header = src.header
        records = list(src)
    ref = tmp_path / "ref.fa"
    with open(ref, "w") as fh:
        for sq in header.to_dict()["SQ"]:
            fh.write(f">{sq['SN']}\n{'A' * sq['LN']}\n")
    pysam.faidx(str(ref))
    with pysam.AlignmentFile(str(cram), "wc", header=header, reference_filename=str(ref)) as dst:
        for rec in records:
            dst.write(rec)
    monkeypatch.setenv("REF_PATH", ":")
    monkeypatch.setenv("REF_CACHE", str(tmp_path / "nocache"))
    ref.unlink()
    assert main(["-i", str(cram), "-o", str(tmp_path / "h.cram.crai")]) == 0
    assert (tmp_path / "h.cram.crai").stat().st_size > 0


@pytest.mark.parametrize(
    ("name", "code", "fragment"),
    [
        ("h_no_eof.bam", 65, "BAM is truncated"),
        ("g_nosq.bam", 65, "no @SQ"),
        ("h_not_bam.bam", 65, "not a BAM or CRAM"),
        ("i_edge.sam", 65, "SAM text cannot be indexed"),
        ("missing.bam", 66, "no such file"),
    ],
)
def test_refusals(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, code: int, fragment: str
) -> None:
    assert main(["-i", str(data_dir / name), "-o", str(tmp_path / "x.bai")]) == code
    err = capsys.readouterr().err.strip()
    assert fragment in err and name in err and "\n" not in err
    assert not list(tmp_path.iterdir())


def test_wrong_suffix_is_usage(data_dir: Path, tmp_path: Path) -> None:
    assert main(["-i", str(data_dir / "h_source.bam"), "-o", str(tmp_path / "x.crai")]) == 64
    assert main([]) == 64
