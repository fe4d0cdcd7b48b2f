"""Issue #14: one report per object version whatever happens to the controller host — the results table
from rows/, no stranded runs, a ledger that cannot write stops intake."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from controller.config import local_config
from controller.ledger import Ledger
from controller.metrics import Metrics
from controller.service import Controller
from tests.support.fakes import ScriptedExecutor, local_controller, submit_run

STEPS = ("index", "alignstats", "summary")


def finish_ok(ctl: Controller, executor: ScriptedExecutor, key: str, prefix: str) -> str:
    """A run for `key` whose jobs all succeeded and whose summary row is in rows/."""
    run_id = submit_run(ctl, key, prefix)
    run = ctl.ledger.get_run(run_id)
    Path(run.row_uri).parent.mkdir(parents=True, exist_ok=True)
    Path(run.row_uri).write_text(json.dumps({"sample": prefix, "inbox_key": key, "run_id": run_id}))
    executor.states.update({f"{prefix}-{step}": "SUCCEEDED" for step in STEPS})
    return run_id


def table_keys(tmp_path: Path) -> list[str]:
    with (tmp_path / "results" / "table" / "results.csv").open() as fh:
        return [r["inbox_key"] for r in csv.DictReader(fh)]


def test_the_table_is_rebuilt_from_rows_not_from_a_new_ledger(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    ctl = local_controller(tmp_path, executor)
    for i in (1, 2):
        finish_ok(ctl, executor, f"old{i}.bam", f"o{i}")
    ctl.reconcile()
    assert table_keys(tmp_path) == ["old1.bam", "old2.bam"]
    ctl.ledger.close()
    (tmp_path / "state.db").unlink()  # the host lost its disk; rows/ in the results store survived

    executor = ScriptedExecutor()
    ctl = local_controller(tmp_path, executor)
    finish_ok(ctl, executor, "new.bam", "n")
    ctl.reconcile()
    assert table_keys(tmp_path) == ["new.bam", "old1.bam", "old2.bam"]


def test_the_table_reads_only_rows_it_has_not_seen(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    ctl = local_controller(tmp_path, executor)
    finish_ok(ctl, executor, "a.bam", "a")
    ctl.reconcile()
    assert ctl.finisher.rows.reads == 1
    finish_ok(ctl, executor, "b.bam", "b")
    ctl.reconcile()
    assert ctl.finisher.rows.reads == 2  # a's row was not read again
    assert table_keys(tmp_path) == ["a.bam", "b.bam"]


def test_the_newest_version_of_a_key_wins_in_the_table(tmp_path: Path) -> None:
    rows = tmp_path / "results" / "rows"
    rows.mkdir(parents=True)
    newer = {"inbox_key": "k.bam", "run_id": "r2", "event_time": "2026-12-01T10:00:00+00:00"}
    older = {
        "inbox_key": "k.bam",
        "run_id": "r1",
        "event_time": "2026-12-01T09:00:00+00:00",
        "written_at": "2026-12-02T00:00:00+00:00",
    }  # finished later: a retry
    (rows / "r2.json").write_text(json.dumps(newer))
    (rows / "r1.json").write_text(json.dumps(older))
    (rows / "junk.json").write_text("[1, 2]")
    ctl = Controller(
        local_config(tmp_path), ledger=Ledger(tmp_path / "state.db"), executor=ScriptedExecutor(),
        source=None, metrics=Metrics(),
    )  # fmt: skip
    assert ctl.finisher.rows.refresh() == [newer]
