"""Issue #14: one report per object version whatever happens to the controller host — the results table
from rows/, no stranded runs, a ledger that cannot write stops intake."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from controller.config import local_config
from controller.daemon import Daemon
from controller.ledger import Ledger
from controller.metrics import Metrics
from controller.service import Controller
from core.errors import TransientIOError
from core.objectstore import LocalObjectStore
from tests.support.fakes import ListSource, ScriptedExecutor, burst, local_controller, submit_run

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
    [row] = ctl.finisher.rows.refresh()
    # The table's row is the newer version's, with the controller's QC verdict columns added on read.
    assert {k: v for k, v in row.items() if not k.startswith("qc_")} == newer
    assert row["qc_verdict"] in ("pass", "warn", "fail")


class FlakyReads(LocalObjectStore):
    """The results store answering reads with S3's 503 SlowDown (after botocore's retries) `fail` times."""

    def __init__(self, fail: int) -> None:
        self.fail = fail

    def read_bytes(self, loc):  # type: ignore[no-untyped-def]
        if self.fail > 0:
            self.fail -= 1
            raise TransientIOError(f"read {loc}: S3 error after retries (SlowDown: Please reduce your rate)")
        return super().read_bytes(loc)


def test_a_transient_error_reading_the_row_leaves_the_run_active_until_the_next_pass(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    store = FlakyReads(fail=1)
    ctl = Controller(
        local_config(tmp_path), ledger=Ledger(tmp_path / "state.db"), executor=executor, source=None,
        metrics=Metrics(), store=store,
    )  # fmt: skip
    run_id = finish_ok(ctl, executor, "t.bam", "t")
    ctl.reconcile()
    assert ctl.ledger.get_run(run_id).state == "active"  # not failed for good
    ctl.reconcile()  # no job changes any more: the sweep finishes it
    assert ctl.ledger.get_run(run_id).state == "succeeded"
    assert table_keys(tmp_path) == ["t.bam"]


def test_a_run_whose_jobs_all_ended_without_being_finished_is_swept(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    ctl = local_controller(tmp_path, executor)
    run_id = finish_ok(ctl, executor, "c.bam", "c")
    # The crash window: the last SUCCEEDED was committed, the controller died before finishing the run.
    for step in STEPS:
        ctl.ledger.update_job(run_id, step, state="SUCCEEDED")
    failed_id = submit_run(ctl, "d.bam", "d")
    ctl.ledger.update_job(failed_id, "index", state="FAILED", reason="boom")
    ctl.reconcile()
    assert ctl.ledger.get_run(run_id).state == "succeeded"
    assert ctl.ledger.get_run(failed_id).state == "failed"
    assert [j.state for j in ctl.ledger.jobs_for_run(failed_id)] == ["FAILED", "CANCELLED", "CANCELLED"]


def test_retry_runs_the_finishing_of_a_run_again(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    ctl = local_controller(tmp_path, executor)
    run_id = finish_ok(ctl, executor, "m.bam", "m")
    row = Path(ctl.ledger.get_run(run_id).row_uri)
    text = row.read_text()
    row.unlink()
    ctl.reconcile()
    run = ctl.ledger.get_run(run_id)
    assert run.state == "failed" and "summary row unreadable" in run.reason
    row.write_text(text)  # the operator restored the row
    assert ctl.ledger.retry_run(run_id) == ["finish"]
    ctl.reconcile()
    assert ctl.ledger.get_run(run_id).state == "succeeded"


class CountingSource(ListSource):
    def __init__(self, bodies: list[str]) -> None:
        super().__init__(bodies)
        self.receives = 0

    def receive(self, max_messages: int = 10) -> list:  # type: ignore[type-arg]
        self.receives += 1
        return super().receive(max_messages)


def test_a_ledger_that_cannot_commit_stops_intake_until_it_can(tmp_path: Path, monkeypatch) -> None:
    from controller import service

    monkeypatch.setattr(service, "LEDGER_PROBE_SECONDS", 0.0, raising=False)
    cfg = local_config(tmp_path)
    source = CountingSource(burst(cfg, 30))
    ctl = Controller(
        cfg, ledger=Ledger(tmp_path / "state.db"), executor=ScriptedExecutor(), source=source,
        metrics=Metrics(),
    )  # fmt: skip
    gauge = "alignbatch_ledger_writable"
    ctl.ledger._conn.execute("PRAGMA query_only = ON")  # every write now fails like a full disk
    for _ in range(5):
        ctl.poll()
    assert source.receives == 1  # the batch that found out; then no receive while it cannot commit
    assert ctl.metrics.registry.get_sample_value(gauge) == 0
    daemon = Daemon(ctl)
    daemon.started = True
    for loop in ("poll", "reconcile"):
        ctl.metrics.loop_ok(loop)
    assert not daemon.ready()

    ctl.ledger._conn.execute("PRAGMA query_only = OFF")  # space freed
    assert ctl.poll().acked == 10
    assert ctl.metrics.registry.get_sample_value(gauge) == 1 and daemon.ready()
    # (a message of the failed batch still being handled when writes came back may have committed too)
    assert {f"s{i}.bam" for i in range(10, 20)} <= {r.key for r in ctl.ledger.runs()}


def test_a_full_disk_flags_the_ledger_unwritable_and_a_probe_clears_it(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "state.db")
    pages = ledger._conn.execute("PRAGMA page_count").fetchone()[0]
    ledger._conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL on the next new page
    assert not ledger.probe_write() and not ledger.writable
    assert "full" in (ledger.write_error or "")
    ledger._conn.execute(f"PRAGMA max_page_count = {pages * 1000}")
    assert ledger.probe_write() and ledger.writable


def test_a_controller_without_ledger_or_backup_rebuilds_finished_runs_from_rows(tmp_path: Path) -> None:
    from controller.factory import build_controller
    from tests.support.fakes import inbox_event

    cfg = local_config(tmp_path)
    (tmp_path / "inbox").mkdir()
    rows = tmp_path / "results" / "rows"
    rows.mkdir(parents=True)
    for i in (1, 2):
        row = {"run_id": f"r{i:016x}", "sample": f"s{i}", "inbox_key": f"s{i}.bam", "input_etag": "1-10",
               "input_uri": str(tmp_path / "inbox" / f"s{i}.bam"), "input_size": 10}  # fmt: skip
        (rows / f"r{i:016x}.json").write_text(json.dumps(row))
    ctl = build_controller(cfg, metrics=Metrics(), once=True)
    try:
        assert sorted((r.key, r.state) for r in ctl.ledger.runs()) == [
            ("s1.bam", "succeeded"), ("s2.bam", "succeeded"),
        ]  # fmt: skip
        assert ctl.handle_event(inbox_event(ctl, "s1.bam")) == "duplicate"  # the same object is not run again
    finally:
        ctl.executor.close(wait=False)


def test_a_backup_restores_the_ledger_on_start(tmp_path: Path) -> None:
    from controller.factory import build_controller

    cfg = local_config(tmp_path)
    (tmp_path / "inbox").mkdir()
    executor = ScriptedExecutor()
    ctl = local_controller(tmp_path, executor)
    submit_run(ctl, "a.bam", "a")
    assert ctl.backup_ledger() > 0
    ctl.ledger.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp_path / 'state.db'}{suffix}").unlink(missing_ok=True)
    restored = build_controller(cfg, metrics=Metrics(), once=True)
    try:
        [run] = restored.ledger.runs()
        assert run.key == "a.bam" and [j.job_id for j in restored.ledger.jobs_for_run(run.run_id)] == [
            "a-index", "a-alignstats", "a-summary",
        ]  # fmt: skip
    finally:
        restored.executor.close(wait=False)
