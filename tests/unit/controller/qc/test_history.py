"""controller.qc.history: the Parquet history (schema, dedupe by run_id, safe append, time filters)."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from controller.qc import history

GOLDEN = Path(__file__).resolve().parents[3] / "data" / "golden"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def row(i: int, report: str = "a_wgs__C", **extra: object) -> dict:
    doc = json.loads((GOLDEN / f"{report}.json").read_text())
    out = {
        "run_id": f"run-{i}",
        "sample": f"s{i}",
        "inbox_key": f"wgs/s{i}.bam",
        "input_size": str(1000 + i),
        "written_at": (T0 + timedelta(hours=i)).isoformat(),
        "qc_verdict": "pass",
        "qc_failed_rules": [],
    }
    out.update(doc)
    out.update(extra)
    return out


def test_schema_follows_the_spec_types() -> None:
    table = history.rows_to_table([row(0), row(1, "d_capture__t")])
    schema = table.schema
    assert schema.field("MappedReadsPct").type == pa.float64()
    assert schema.field("YieldReads").type == pa.int64()
    assert schema.field("InsertSizeMedian").type == pa.int64()
    assert schema.field("WgsCoverageMean").type == pa.float64()
    assert schema.field("input_size").type == pa.int64()
    assert schema.field("qc_failed_rules").type == pa.string()
    assert schema.field("written_ts").type == pa.timestamp("us", tz="UTC")
    # a WGS-only row has no capture values: nulls, not zeros
    assert table.column("CapCoverageMean").to_pylist() == [None, 82.149856]


def test_append_dedupes_by_run_id_newest_wins(tmp_path: Path) -> None:
    path = tmp_path / "h" / "history.parquet"
    assert history.append_rows(path, [row(0), row(1)]) == 2
    rules = [
        {"metric": "WgsCoverageMean", "value": 18.4, "threshold": 20.0, "level": "fail", "direction": "min"}
    ]
    assert history.append_rows(path, [row(1, qc_verdict="fail", qc_failed_rules=rules), row(2)]) == 3
    rows = history.read_history(path)
    assert [r["run_id"] for r in rows] == ["run-0", "run-1", "run-2"]
    assert rows[1]["qc_verdict"] == "fail"
    assert rows[1]["qc_failed_rules"] == rules
    assert rows[0]["input_size"] == 1000
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert history.append_rows(path, []) == 3


def test_new_columns_and_types_keep_concatenating(tmp_path: Path) -> None:
    path = tmp_path / "history.parquet"
    history.append_rows(path, [row(0)])  # WGS only
    history.append_rows(path, [row(1, "d_capture__t", qc_assay="exome")])  # adds Cap* and qc_assay
    history.append_rows(path, [row(2, input_size="")])  # empty provenance becomes null
    table = pq.read_table(path)
    assert table.num_rows == 3
    assert table.column("CapCoverageMean").to_pylist() == [None, 82.149856, None]
    assert table.column("qc_assay").to_pylist() == [None, "exome", None]
    assert table.column("input_size").to_pylist() == [1000, 1001, None]


def test_time_window_and_columns(tmp_path: Path) -> None:
    path = tmp_path / "history.parquet"
    history.append_rows(path, [row(i) for i in range(10)])
    rows = history.read_history(
        path, since=T0 + timedelta(hours=3), until=T0 + timedelta(hours=6), columns=["MappedReadsPct", "nope"]
    )
    assert [r["run_id"] for r in rows] == ["run-3", "run-4", "run-5"]
    assert set(rows[0]) == {"run_id", "written_ts", "MappedReadsPct"}
    assert history.read_history(tmp_path / "absent.parquet") == []


def test_row_without_run_id_is_refused() -> None:
    with pytest.raises(ValueError, match="without run_id"):
        history.rows_to_table([{"sample": "x"}])


def _append_many(path: str, start: int) -> None:
    for i in range(start, start + 8):
        history.append_rows(path, [row(i)])


def test_concurrent_appenders_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "history.parquet")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(path, start)) for start in (0, 100)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    ids = {r["run_id"] for r in history.read_history(path, columns=[])}
    assert ids == {f"run-{i}" for i in [*range(8), *range(100, 108)]}
