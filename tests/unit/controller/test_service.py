"""Controller service logic on a local profile (no servers, no jobs run): event outcomes for odd keys,
duplicates, rejected objects, the RUNNABLE watchdog, cancel."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller import service as service_module
from controller.config import ControllerConfig, local_config
from controller.events import ObjectEvent, s3_notification_body
from controller.factory import build_controller
from controller.ledger import Ledger
from controller.metrics import Metrics
from controller.service import Controller
from core.objectstore import LocalObjectStore
from tests.support.fakes import (
    DescribingExecutor,
    ForgetfulExecutor,
    HeldExecutor,
    ListSource,
    ScriptedExecutor,
)


@pytest.fixture()
def ctl(tmp_path: Path):
    (tmp_path / "inbox").mkdir()
    c = build_controller(local_config(tmp_path), metrics=Metrics(), with_source=False, slots=1)
    yield c
    c.executor.close(wait=False)


def ev(ctl, key: str, etag: str = "1-10") -> ObjectEvent:
    return ObjectEvent(ctl.cfg.inbox_root, key, 10, etag, None, "ObjectCreated:Put", datetime.now(UTC))


def count(ctl, outcome: str) -> float:
    return ctl.metrics.registry.get_sample_value("alignbatch_events_total", {"outcome": outcome}) or 0.0


ODD_KEYS = ["a b+c.bam", "ünïcødé/样本.bam", "x" * 200 + ".bam", "deep/" * 20 + "s.cram.bam"]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_odd_but_legal_keys_are_accepted(ctl, key: str) -> None:
    assert ctl.handle_event(ev(ctl, key)) == "accepted"
    assert ctl.handle_event(ev(ctl, key)) == "duplicate"
    [run] = ctl.ledger.runs()
    assert run.key == key and run.input_uri == str(Path(ctl.cfg.inbox_root) / key)


@pytest.mark.parametrize("key", ["../escape.bam", "a/./b.bam", "a//b.bam", "y" * 300 + ".bam"])
def test_unsafe_keys_are_rejected_visibly(ctl, key: str) -> None:
    assert ctl.handle_event(ev(ctl, key)) == "ignored"
    [run] = ctl.ledger.runs()
    assert run.state == "rejected" and run.reason and key[:20] in run.reason
    assert ctl.ledger.jobs_for_run(run.run_id) == []
    assert ctl.handle_event(ev(ctl, key)) == "duplicate"


def test_cram_without_reference_is_rejected(ctl) -> None:
    assert ctl.handle_event(ev(ctl, "x.cram")) == "ignored"
    assert "reference_fasta" in (ctl.ledger.runs()[0].reason or "")


def test_index_event_then_bam_skips_index_step(ctl) -> None:
    assert ctl.handle_event(ev(ctl, "s.bam.bai")) == "index_recorded"
    assert ctl.handle_event(ev(ctl, "s.bam")) == "accepted"
    run = ctl.ledger.runs()[0]
    assert [j.step for j in ctl.ledger.jobs_for_run(run.run_id)] == ["alignstats", "summary"]
    assert ctl.handle_event(ev(ctl, "notes.md")) == "ignored"
    # A new version of the same key is a new run.
    assert ctl.handle_event(ev(ctl, "s.bam", etag="2-10")) == "accepted"
    assert count(ctl, "accepted") == 2


def test_runnable_watchdog_and_cancel(ctl) -> None:
    ctl.handle_event(ev(ctl, "s.bam"))
    run = ctl.ledger.runs()[0]
    ctl.ledger.mark_submitted(run.run_id, "index", "J1")
    ctl.ledger.update_job(run.run_id, "index", state="RUNNABLE", now=time.time() - 7200)
    ctl.check_runnable()
    age = ctl.metrics.registry.get_sample_value("alignbatch_oldest_runnable_age_seconds")
    assert age is not None and age >= 7199
    assert "J1" in ctl._runnable_flagged
    ctl.ledger.update_job(run.run_id, "index", state="RUNNING")
    ctl.check_runnable()
    assert not ctl._runnable_flagged  # a long-running daemon must not keep every job it ever flagged
    ctl.ledger.update_job(run.run_id, "index", state="RUNNABLE", now=time.time() - 7200)
    ctl.check_runnable()
    assert "J1" in ctl._runnable_flagged
    assert ctl.cancel_run(run.run_id)
    assert ctl.ledger.get_run(run.run_id).state == "cancelled"
    assert {j.state for j in ctl.ledger.jobs_for_run(run.run_id)} == {"CANCELLED"}
    assert "runs active=0" in ctl.status_line()


def _burst(cfg: ControllerConfig, n: int) -> list[str]:
    """SQS bodies for `n` distinct BAMs put into the inbox, one event each."""
    return [
        s3_notification_body(
            [ObjectEvent(cfg.inbox_root, f"s{i}.bam", 10, f"{i}-1", None, "ObjectCreated:Put", None)]
        )
        for i in range(n)
    ]


def test_polling_goes_on_while_a_submission_pass_waits(tmp_path: Path) -> None:
    """Messages are committed and acknowledged while SubmitJob calls are stuck: submission has its own
    threads, so a long pass (hundreds of runs behind the token bucket) never holds up the next receive."""
    (tmp_path / "inbox").mkdir()
    cfg = local_config(tmp_path)
    bodies = _burst(cfg, 40)
    source, executor = ListSource(bodies), HeldExecutor()
    ctl = Controller(
        cfg, ledger=Ledger(tmp_path / "state.db"), executor=executor, source=source, metrics=Metrics()
    )
    assert ctl.poll().acked == 10
    passer = threading.Thread(target=ctl.submit_ready)
    passer.start()
    try:
        assert executor.started.wait(timeout=30)
        # Every submission thread is now parked in SubmitJob; polling must still get through.
        assert ctl.poll().acked == 10
        assert ctl.poll().acked == 10
        assert len(source.acked) == 30 and executor.submitted == []
    finally:
        executor.release.set()
        passer.join(timeout=60)
    assert ctl.submit_ready() >= 0 and not ctl.ledger.runs_with_unsubmitted_jobs()


def test_sigterm_stops_a_submission_pass_between_runs(tmp_path: Path) -> None:
    """A pass of hundreds of runs behind the token bucket must not hold up a graceful stop: runs already
    being submitted finish their chain, the rest stay PLANNED for the next start."""
    (tmp_path / "inbox").mkdir()
    cfg = local_config(tmp_path)
    bodies = _burst(cfg, 40)
    executor = HeldExecutor()
    ledger = Ledger(tmp_path / "state.db")
    local = Controller(cfg, ledger=ledger, executor=executor, source=ListSource(bodies), metrics=Metrics())
    while local.poll().received:
        pass
    # The same ledger under an AWS-mode controller (local mode finishes everything on shutdown).
    aws = Controller(
        replace(cfg, local_dir=None),
        ledger=ledger,
        executor=executor,
        source=None,
        metrics=Metrics(),
        store=LocalObjectStore(),
    )
    passer = threading.Thread(target=aws.submit_ready)
    passer.start()
    assert executor.started.wait(timeout=30)
    aws.stopping.set()
    executor.release.set()
    passer.join(timeout=60)
    assert not passer.is_alive()
    assert 0 < len(executor.submitted) <= 8 * 3  # at most the runs the 8 submit threads had started
    assert len(ledger.runs_with_unsubmitted_jobs()) >= 40 - 8


def test_reconcile_walks_active_jobs_a_page_at_a_time(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(service_module, "ACTIVE_JOB_PAGE", 2)
    cfg = local_config(tmp_path)
    executor = DescribingExecutor()
    ctl = Controller(
        cfg, ledger=Ledger(tmp_path / "state.db"), executor=executor, source=None, metrics=Metrics()
    )
    for i in range(5):
        ctl.handle_event(ev(ctl, f"s{i}.bam"))
    for n, run in enumerate(ctl.ledger.runs()):
        ctl.ledger.mark_submitted(run.run_id, "index", f"J{n}")
    assert ctl.reconcile() == 5
    assert [len(b) for b in executor.batches] == [2, 2, 1]
    assert sum(len(page) for page in ctl.ledger.job_pages(["RUNNING"])) == 5


def _scripted_controller(tmp_path: Path, executor: HeldExecutor) -> Controller:
    return Controller(
        local_config(tmp_path), ledger=Ledger(tmp_path / "state.db"), executor=executor, source=None,
        metrics=Metrics(),
    )  # fmt: skip


def _submit_run(ctl: Controller, key: str, prefix: str, steps=("index", "alignstats", "summary")) -> str:
    """Plan a run for `key` and mark its `steps` submitted, in that order, as job ids `<prefix>-<step>`."""
    if not [r for r in ctl.ledger.runs() if r.key == key]:
        ctl.handle_event(ev(ctl, key))
    [run] = [r for r in ctl.ledger.runs() if r.key == key]
    for step in steps:
        ctl.ledger.mark_submitted(run.run_id, step, f"{prefix}-{step}")
    return run.run_id


def test_reconcile_does_not_describe_jobs_held_by_an_active_upstream(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    ctl = _scripted_controller(tmp_path, executor)
    for sample in ("a", "b"):
        _submit_run(ctl, f"{sample}.bam", sample)
    executor.states = {"a-index": "RUNNING", "b-index": "RUNNING"}

    ctl.reconcile()  # only the two index jobs can have moved: their children wait on them in Batch
    assert executor.batches == [["a-index", "b-index"]]
    sample = ctl.metrics.registry.get_sample_value
    assert sample("alignbatch_reconcile_jobs_total", {"outcome": "described"}) == 2
    assert sample("alignbatch_reconcile_jobs_total", {"outcome": "held"}) == 4

    executor.batches.clear()
    executor.states.update({"a-index": "SUCCEEDED", "a-alignstats": "RUNNING"})
    ctl.reconcile()  # a's index ended in this pass: its child is described at once, the grandchild not
    assert executor.batches == [["a-index", "b-index"], ["a-alignstats"]]

    executor.batches.clear()
    executor.states.update({"a-alignstats": "SUCCEEDED", "a-summary": "SUCCEEDED"})
    executor.states.update({"b-index": "SUCCEEDED", "b-alignstats": "SUCCEEDED", "b-summary": "FAILED"})
    ctl.reconcile()  # a whole chain that ended between two passes is seen in one pass
    assert executor.batches == [["a-alignstats", "b-index"], ["a-summary", "b-alignstats"], ["b-summary"]]
    states = {j.job_id: j.state for r in ctl.ledger.runs() for j in ctl.ledger.jobs_for_run(r.run_id)}
    assert states["a-summary"] == "SUCCEEDED" and states["b-summary"] == "FAILED"


def test_held_by_upstream_only_holds_children_of_an_upstream_active_in_the_same_page(
    tmp_path: Path,
) -> None:
    executor = ScriptedExecutor()
    ctl = _scripted_controller(tmp_path, executor)
    _submit_run(ctl, "c.bam", "c")
    [page] = ctl.ledger.job_pages(["SUBMITTED"], 10)
    assert service_module.held_by_upstream(page) == {"c-alignstats": "c-index", "c-summary": "c-alignstats"}
    # The upstream on another page (or already ended): not known to be active, so nothing is held.
    assert service_module.held_by_upstream([j for j in page if j.step != "alignstats"]) == {}

    # An upstream submitted after its child (requeued after a restart) is not what the child waits on.
    d = _submit_run(ctl, "d.bam", "d", steps=("alignstats", "summary"))
    time.sleep(0.01)
    _submit_run(ctl, "d.bam", "d", steps=("index",))
    [page] = ctl.ledger.job_pages(["SUBMITTED"], 10)
    held = service_module.held_by_upstream([j for j in page if j.run_id == d])
    assert held == {"d-summary": "d-alignstats"}


def test_jobs_the_executor_forgot_are_all_requeued_in_one_pass(tmp_path: Path) -> None:
    executor = ForgetfulExecutor()
    ctl = _scripted_controller(tmp_path, executor)
    run_id = _submit_run(ctl, "r.bam", "old")
    ctl.reconcile()
    # A requeued upstream releases its children in the same pass, so none waits a pass per step.
    assert executor.batches == [["old-index"], ["old-alignstats"], ["old-summary"]]
    assert [j.state for j in ctl.ledger.jobs_for_run(run_id)] == ["PLANNED"] * 3
