"""controller.qc.results_files: locating reports and rows in a RESULTS directory, composition parts."""

from __future__ import annotations

import json
from pathlib import Path

from controller.qc import results_files as rf

GOLDEN = Path(__file__).resolve().parents[3] / "data" / "golden"


def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


def test_inbox_key_of(tmp_path: Path) -> None:
    root = tmp_path / "RESULTS"
    (root / "rows").mkdir(parents=True)
    report = root / "reports" / "proj" / "reports" / "s1.bam.alignstats.json"
    assert rf.inbox_key_of(report) == (root, "proj/reports/s1.bam")
    bare = tmp_path / "copy" / "reports" / "x" / "s2.cram.alignstats.json"
    assert rf.inbox_key_of(bare) == (tmp_path / "copy", "x/s2.cram")
    assert rf.inbox_key_of(tmp_path / "elsewhere" / "s.alignstats.json") is None
    assert rf.inbox_key_of(root / "reports" / "s.json") is None


def test_latest_rows_and_broken_files(tmp_path: Path) -> None:
    (tmp_path / "rows").mkdir()
    (tmp_path / "table").mkdir()
    (tmp_path / "rows" / "a.json").write_text(
        json.dumps({"inbox_key": "k", "written_at": "2026-12-01T10:00:00", "v": 2})
    )
    (tmp_path / "rows" / "b.json").write_text("{torn")
    (tmp_path / "table" / "results.jsonl").write_text(
        json.dumps({"inbox_key": "k", "written_at": "2026-11-01T10:00:00", "v": 1}) + "\nnot json\n"
    )
    latest = rf.latest_rows_by_key(rf.read_rows(tmp_path))
    assert latest["k"]["v"] == 2


def test_compositions_add_up() -> None:
    for name in ("a_wgs__C", "c_flags__C", "d_capture__t", "f_se__C", "i_edge__C"):
        r = golden(name)
        assert sum(rf.read_composition(r).values()) == r["YieldReads"], name
        assert sum(rf.base_composition(r).values()) == r["YieldBases"], name
        q = rf.quality_composition(r)
        assert sum(q.values()) == r["AlignedBases"], name
    r = golden("a_wgs__C")
    read2_records = sum(rf.pair_composition(r).values())
    assert read2_records == r["TotalPairs"] + r["UnpairedReads"] + r["R1UnpairedReads"] + r["R2UnpairedReads"]
    assert rf.cumulative_coverage(r, "Cap") == {}
    assert rf.cumulative_coverage(r, "Wgs")[30] == r["WgsCoverageBases30Pct"]
