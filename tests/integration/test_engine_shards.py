"""Fan-out: an indexed BAM in N shards (part files) merged gives the single run's report, byte for byte.

What the controller's shard array + merge step will run: each child `--shard-of N --shard-index I`
(or AWS_BATCH_JOB_ARRAY_INDEX) writes a part file, `--merge-parts` renders the report.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.exitcodes import ExitCode
from worker.engine.cli import main

GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "data" / "golden"


def shard_and_merge(workdir: Path, args: list[str], n: int, tmp: Path, monkeypatch) -> bytes:
    monkeypatch.chdir(workdir)
    parts = []
    for i in range(n):
        part = tmp / f"part-{i}.json"
        monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_INDEX", str(i))  # as a Batch array child finds its group
        assert main(["--shard-of", str(n), "--part-out", str(part), *args]) == 0
        parts.append(str(part))
    report = tmp / "merged.json"
    assert main(["--merge-parts", "-o", str(report), *reversed(parts)]) == 0  # any order of parts
    return report.read_bytes()


def single(workdir: Path, args: list[str], tmp: Path, monkeypatch) -> bytes:
    monkeypatch.chdir(workdir)
    out = tmp / "single.json"
    assert main([*args, "-o", str(out)]) == 0
    return out.read_bytes()


CASES = {
    "a_wgs__C": ["-C", "-i", "a_wgs.bam"],
    "a_wgs__t": ["-t", "targets.bed", "-i", "a_wgs.bam"],
    "a_wgs__t_m": ["-t", "targets.bed", "-m", "nmask.bed", "-i", "a_wgs.bam"],
    "a_wgs__C_O": ["-C", "-O", "-i", "a_wgs.bam"],
    "d_capture__t": ["-t", "targets.bed", "-i", "d_capture.bam"],
}


@pytest.mark.parametrize("n", [3, 8])
@pytest.mark.parametrize("name", list(CASES))
def test_shards_merge_to_the_single_run(
    refdata: Path, tmp_path: Path, monkeypatch, name: str, n: int
) -> None:
    merged = shard_and_merge(refdata, CASES[name], n, tmp_path, monkeypatch)
    assert merged == single(refdata, CASES[name], tmp_path, monkeypatch)
    assert merged == (GOLDEN / f"{name}.json").read_bytes()


def test_small_edge_case_in_two_shards_with_q9(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    args = ["-t", "i_edge_targets.bed", "-i", "i_edge.bam"]
    assert shard_and_merge(data_dir, args, 2, tmp_path, monkeypatch) == single(
        data_dir, args, tmp_path, monkeypatch
    )


def test_part_file_says_which_contigs(refdata: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(refdata)
    part = tmp_path / "p.json"
    assert (
        main(["--shard-of", "8", "--shard-index", "7", "--part-out", str(part), "-C", "-i", "a_wgs.bam"]) == 0
    )
    doc = json.loads(part.read_text())
    assert doc["shard_of"] == 8 and doc["shard_index"] == 7
    # 5 contigs (4 with records) + '*' over 8 shards: the last shards are empty but valid
    assert sum(len(t) for t, _ in doc["plan"]) == 4
    assert sum(1 for _, star in doc["plan"] if star) == 1


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["-C", "-r", "regions.bed", "-i", "a_wgs.bam"], "-r reads records region by region"),
        (["-C", "-T", "ref.fa", "-i", "b_wgs.cram"], "not a BAM file"),
    ],
)
def test_options_the_merge_cannot_split_are_refused(
    refdata: Path, tmp_path: Path, monkeypatch, capsys, args: list[str], why: str
) -> None:
    monkeypatch.chdir(refdata)
    part = tmp_path / "p.json"
    code = main(["--shard-of", "3", "--shard-index", "0", "--part-out", str(part), *args])
    assert code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "cannot shard" in err and why in err
    assert not part.exists()


def test_no_index_is_refused(data_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    shutil.copy(data_dir / "i_edge.bam", tmp_path / "x.bam")
    monkeypatch.chdir(tmp_path)
    code = main(["--shard-of", "2", "--shard-index", "0", "--part-out", "p.json", "-C", "-i", "x.bam"])
    assert code == ExitCode.USAGE
    assert "no .bai/.csi index" in capsys.readouterr().err


def test_no_array_index_is_refused(data_dir: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("AWS_BATCH_JOB_ARRAY_INDEX", raising=False)
    monkeypatch.chdir(data_dir)
    assert main(["--shard-of", "2", "--part-out", "p.json", "-C", "-i", "i_edge.bam"]) == ExitCode.USAGE
    assert "AWS_BATCH_JOB_ARRAY_INDEX" in capsys.readouterr().err


def test_merge_refuses_missing_or_foreign_parts(data_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(data_dir)
    a, b, c = (tmp_path / f"{x}.json" for x in "abc")
    base = ["--shard-of", "2", "-i", "i_edge.bam"]
    assert main([*base, "--shard-index", "0", "--part-out", str(a), "-C"]) == 0
    assert main([*base, "--shard-index", "1", "--part-out", str(b), "-C"]) == 0
    assert main([*base, "--shard-index", "1", "--part-out", str(c), "-C", "-q", "20"]) == 0
    out = tmp_path / "r.json"
    assert main(["--merge-parts", "-o", str(out), str(a)]) == ExitCode.USAGE
    assert "expected shards [0, 1] of 0..1" in capsys.readouterr().err
    assert main(["--merge-parts", "-o", str(out), str(a), str(c)]) == ExitCode.USAGE
    assert "different runs" in capsys.readouterr().err
    assert not out.exists()
    assert main(["--merge-parts", "-o", str(out), str(a), str(b)]) == 0


def test_empty_groups_need_not_run(refdata: Path, tmp_path: Path, monkeypatch) -> None:
    """8 shards of a 4-contig BAM: the merge of only the non-empty groups' parts is the full report
    (chr1 bounds the plan, so chr2 and chr3 share a group and '*' rides along with chrM: three groups
    read something)."""
    from worker.engine.bamindex import read_index
    from worker.engine.shards import plan_from_index

    plan = plan_from_index(read_index(str(refdata / "a_wgs.bam.bai")), 8)
    assert [s.empty for s in plan] == [False] * 3 + [True] * 5
    monkeypatch.chdir(refdata)
    parts = []
    for shard in plan:
        if not shard.empty:
            part = tmp_path / f"p{shard.index}.json"
            args = ["--shard-of", "8", "--shard-index", str(shard.index), "--part-out", str(part)]
            assert main([*args, "-C", "-i", "a_wgs.bam"]) == 0
            parts.append(str(part))
    out = tmp_path / "r.json"
    assert main(["--merge-parts", "-o", str(out), *parts]) == 0
    assert out.read_bytes() == (GOLDEN / "a_wgs__C.json").read_bytes()
