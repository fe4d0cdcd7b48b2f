"""controller.qc.publish: verdict columns for a row, the history and the day's report after a table
write, issues from the ledger, and a report that cannot be written failing nothing but itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.qc.publish import QcPublisher, report_uri
from core.errors import WorkerError
from core.locations import Location
from core.objectstore import LocalObjectStore
from tests.support.fakes import ScriptedExecutor, local_controller, submit_run

pytest.importorskip("pyarrow")

GOOD = {"MappedReadsPct": 99.0, "DuplicateReadsPct": 5.0, "WgsCoverageMean": 35.0,
        "WgsCoverageBases20Pct": 95.0, "Q30BasesPct": 90.0, "InsertSizeMedian": 300,
        "ChimericReadPairPct": 1.0}  # fmt: skip


def finish(ctl, tmp_path: Path, key: str, prefix: str, metrics: dict) -> str:
    run_id = submit_run(ctl, key, prefix)
    run = ctl.ledger.get_run(run_id)
    Path(run.row_uri).parent.mkdir(parents=True, exist_ok=True)
    row = {"sample": run.sample, "inbox_key": key, "run_id": run_id, **metrics,
           "written_at": datetime.now(UTC).isoformat()}  # fmt: skip
    Path(run.row_uri).write_text(json.dumps(row))
    ctl.executor.states.update({f"{prefix}-{s}": "SUCCEEDED" for s in ("index", "alignstats", "summary")})
    ctl.reconcile()
    return run_id


def test_verdicts_history_and_report_after_the_table(tmp_path: Path) -> None:
    ctl = local_controller(tmp_path, ScriptedExecutor())
    good = finish(ctl, tmp_path, "wgs/good.bam", "g", GOOD)
    finish(ctl, tmp_path, "wgs/low.bam", "l", {**GOOD, "WgsCoverageMean": 18.0})
    ctl.flush_reports()  # the second row came within the report's interval; a stop renders it
    rows = {r["run_id"]: r for r in ctl.ledger.result_rows()}
    assert rows[good]["qc_verdict"] == "pass" and rows[good]["qc_rules_sha256"]
    [low] = [r for r in rows.values() if r["run_id"] != good]
    assert low["qc_verdict"] == "fail"
    assert low["qc_failed_rules"][0] == {
        "metric": "WgsCoverageMean", "value": 18.0, "threshold": 20.0, "level": "fail", "direction": "min"
    }  # fmt: skip
    csv = (tmp_path / "results" / "table" / "results.csv").read_text().splitlines()
    assert "qc_verdict" in csv[0].split(",")
    from controller.qc.history import read_history

    assert {r["run_id"] for r in read_history(tmp_path / "qc" / "history.parquet")} == set(rows)
    day = datetime.now(UTC).date()
    page = Path(report_uri(str(tmp_path / "results"), day)).read_text()
    assert "low" in page and "good" in page
    assert (tmp_path / "results" / "report" / "history.parquet").exists()
    text = ctl.metrics.registry.get_sample_value(
        "alignbatch_qc_verdicts_total", {"assay": "wgs", "verdict": "fail"}
    )
    assert text == 1.0


def test_the_report_is_rendered_at_most_once_per_interval_and_nothing_waits_forever(tmp_path: Path) -> None:
    ctl = local_controller(tmp_path, ScriptedExecutor())
    now = [1000.0]
    ctl.qc._clock = lambda: now[0]
    ctl.qc.min_interval_seconds = 60
    finish(ctl, tmp_path, "wgs/a.bam", "a", GOOD)
    assert (ctl.qc.renders, ctl.qc.pending()) == (1, 0)  # the first render is never held back
    for n in range(3):
        now[0] += 5
        finish(ctl, tmp_path, f"wgs/b{n}.bam", f"b{n}", GOOD)
    assert (ctl.qc.renders, ctl.qc.pending()) == (1, 3)  # the table has them; the report waits
    assert len((tmp_path / "results" / "table" / "results.csv").read_text().splitlines()) == 5
    now[0] += 60
    ctl.reconcile()  # a pass with nothing new still renders what waited once the interval is over
    assert (ctl.qc.renders, ctl.qc.pending()) == (2, 0)
    finish(ctl, tmp_path, "wgs/c.bam", "c", GOOD)
    assert ctl.qc.pending() == 1
    ctl.flush_reports()  # a stop renders at once
    assert (ctl.qc.renders, ctl.qc.pending()) == (3, 0)
    page = Path(report_uri(str(tmp_path / "results"), datetime.now(UTC).date())).read_text()
    assert all(name in page for name in ("b0", "b2", "c"))


class FailingStore(LocalObjectStore):
    def __init__(self) -> None:
        self.fail = True

    def write_bytes(self, loc: Location, data: bytes, **kw) -> None:  # type: ignore[override]
        if self.fail and "/report/" in str(loc):
            raise WorkerError(f"{loc}: disk full")
        super().write_bytes(loc, data, **kw)


def test_a_report_that_cannot_be_written_fails_no_run_and_is_retried(tmp_path: Path) -> None:
    ctl = local_controller(tmp_path, ScriptedExecutor())
    store = FailingStore()
    ctl.qc.store = store
    run_id = finish(ctl, tmp_path, "wgs/a.bam", "a", GOOD)
    assert ctl.ledger.get_run(run_id).state == "succeeded"
    assert not (tmp_path / "results" / "report" / "latest.html").exists()
    store.fail = False
    ctl.reconcile()  # the next pass writes the table again and the report with it
    assert (tmp_path / "results" / "report" / "latest.html").exists()


def test_failed_and_lost_runs_are_the_reports_issues(tmp_path: Path) -> None:
    ctl = local_controller(tmp_path, ScriptedExecutor())
    run_id = submit_run(ctl, "wgs/bad.bam", "b", steps=("index",))
    ctl.executor.states = {"b-index": "FAILED"}
    ctl.reconcile()
    now = datetime.now(UTC)
    [issue] = ctl.qc.issues(datetime(2000, 1, 1, tzinfo=UTC), now, now=now)
    assert issue.run_id == run_id and issue.kind == "failed" and issue.step == "index"


def test_a_restart_appends_rows_finished_before_it(tmp_path: Path) -> None:
    ctl = local_controller(tmp_path, ScriptedExecutor())
    finish(ctl, tmp_path, "wgs/a.bam", "a", GOOD)
    (tmp_path / "qc" / "history.parquet").unlink()  # as if the controller died before appending
    again = QcPublisher(
        ctl.qc.thresholds, ledger=ctl.ledger, store=LocalObjectStore(), metrics=ctl.metrics.qc,
        results_root=str(tmp_path / "results"),
    )  # fmt: skip
    assert again.publish()
    from controller.qc.history import read_count

    assert read_count(tmp_path / "qc" / "history.parquet") == 1
