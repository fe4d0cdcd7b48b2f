"""Finishing: a run's verdict from its jobs, the results row and table, cancel."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.fakes import ScriptedExecutor, local_controller, submit_run


def test_a_run_whose_jobs_all_succeeded_lands_in_the_results_table(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    ctl = local_controller(tmp_path, executor)
    run_id = submit_run(ctl, "s.bam", "s")
    run = ctl.ledger.get_run(run_id)
    Path(run.row_uri).parent.mkdir(parents=True, exist_ok=True)
    Path(run.row_uri).write_text(json.dumps({"sample": "s", "run_id": run_id, "TotalRecords": 3}))
    executor.states = {f"s-{step}": "SUCCEEDED" for step in ("index", "alignstats", "summary")}
    ctl.reconcile()
    assert ctl.ledger.get_run(run_id).state == "succeeded"
    [row] = ctl.ledger.result_rows()
    assert {k: row[k] for k in ("sample", "run_id", "TotalRecords")} == {
        "sample": "s", "run_id": run_id, "TotalRecords": 3
    }  # fmt: skip
    # The QC verdict joins the row (a report without the wgs metrics fails every rule, value null).
    assert row["qc_verdict"] == "fail" and row["qc_assay"] == "wgs"
    assert {r["metric"] for r in row["qc_failed_rules"]} >= {"MappedReadsPct", "WgsCoverageMean"}
    assert (tmp_path / "results" / "report" / "latest.html").exists()
    assert set(ctl.ledger.outputs(run_id)) == {"report", "row", "index"}
    table = (tmp_path / "results" / "table" / "results.csv").read_text()
    assert table.splitlines()[1].startswith("s,")


def test_a_failed_job_fails_its_run_and_cancels_what_is_pending(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    ctl = local_controller(tmp_path, executor)
    run_id = submit_run(ctl, "f.bam", "f", steps=("index",))
    executor.states = {"f-index": "FAILED"}
    ctl.reconcile()
    run = ctl.ledger.get_run(run_id)
    assert run.state == "failed" and run.reason.startswith("index failed")
    assert [j.state for j in ctl.ledger.jobs_for_run(run_id)] == ["FAILED", "CANCELLED", "CANCELLED"]
    assert not ctl.cancel_run(run_id)  # already final


def test_an_unreadable_row_fails_the_run(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    ctl = local_controller(tmp_path, executor)
    run_id = submit_run(ctl, "u.bam", "u")
    executor.states = {f"u-{step}": "SUCCEEDED" for step in ("index", "alignstats", "summary")}
    ctl.reconcile()
    run = ctl.ledger.get_run(run_id)
    assert run.state == "failed" and "summary row unreadable" in run.reason
