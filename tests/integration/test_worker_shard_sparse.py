"""The ranges a shard child stages are all the engine reads: a sparse copy of the BAM holding only them
(the holes are zeros, which the strict BGZF reader refuses on sight) gives the part the whole file gives,
and the merged parts give the single run's report. On case e (228 MB, 4 contigs + '*'), where contigs
span thousands of BGZF blocks; skipped when /work/large is absent.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from worker.engine.bamindex import read_index
from worker.engine.cli import main
from worker.engine.shardplan import plan_from_index
from worker.shard_ranges import shard_ranges

LARGE = Path(os.environ.get("ALIGNBATCH_LARGE_DIR", "/work/large"))


@pytest.fixture(scope="module")
def large_bam() -> Path:
    bam = LARGE / "e_large.bam"
    if not (bam.exists() and Path(f"{bam}.bai").exists()):
        pytest.skip(f"{bam} (+ .bai) is not present (large shared case)")
    return bam


def test_sparse_copies_of_case_e_hold_everything_each_shard_reads(
    large_bam: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 4
    size = large_bam.stat().st_size
    index = read_index(f"{large_bam}.bai")
    parts = []
    with open(large_bam, "rb") as src:
        for i, shard in enumerate(plan_from_index(index, n)):
            ranges = shard_ranges(index, shard, size)
            assert sum(r.length for r in ranges) < size
            child = tmp_path / f"child-{i}"
            child.mkdir()
            with open(child / "x.bam", "wb") as out:
                out.truncate(size)  # sparse, as the worker stages it
                for r in ranges:
                    src.seek(r.start)
                    out.seek(r.start)
                    out.write(src.read(r.length))
            shutil.copy(f"{large_bam}.bai", child / "x.bam.bai")
            monkeypatch.chdir(child)  # the same relative name in every child, as the worker runs them
            part = tmp_path / f"part-{i}-of-{n}.json"
            assert (
                main(
                    [
                        "--shard-of",
                        str(n),
                        "--shard-index",
                        str(i),
                        "--part-out",
                        str(part),
                        "-C",
                        "-i",
                        "x.bam",
                    ]
                )
                == 0
            )
            parts.append(str(part))
    merged = tmp_path / "merged.json"
    assert main(["--merge-parts", "-o", str(merged), *parts]) == 0
    whole = tmp_path / "whole"
    whole.mkdir()
    (whole / "x.bam").symlink_to(large_bam)
    monkeypatch.chdir(whole)
    single = tmp_path / "single.json"
    assert main(["-C", "-i", "x.bam", "-o", str(single)]) == 0
    assert merged.read_bytes() == single.read_bytes()
