"""Submission: its own threads (polling goes on meanwhile), SIGTERM between runs, typed commands."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from controller.config import local_config
from controller.ledger import Ledger
from controller.metrics import Metrics
from controller.service import Controller
from core.objectstore import LocalObjectStore
from tests.support.fakes import (
    HeldExecutor,
    ImmediateExecutor,
    ListSource,
    burst,
    inbox_event,
    local_controller,
)


def test_polling_goes_on_while_a_submission_pass_waits(tmp_path: Path) -> None:
    """Messages are committed and acknowledged while SubmitJob calls are stuck: submission has its own
    threads, so a long pass (hundreds of runs behind the token bucket) never holds up the next receive."""
    (tmp_path / "inbox").mkdir()
    cfg = local_config(tmp_path)
    bodies = burst(cfg, 40)
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
    bodies = burst(cfg, 40)
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


def test_submission_follows_depends_on_and_renders_job_refs(tmp_path: Path) -> None:
    """Upstream job ids reach the summary only through its typed JobRefs, never by text in a key."""
    executor = ImmediateExecutor()
    ctl = local_controller(tmp_path, executor)
    ctl.handle_event(inbox_event(ctl, "x{job_id:summary}.bam"))
    assert ctl.submit_ready() == 3
    _, stats, summary = executor.requests
    assert [r.step for r in executor.requests] == ["index", "alignstats", "summary"]
    assert stats.depends_on == ("job-1",) and summary.depends_on == ("job-2",)
    assert "job_id_index=job-1" in summary.command and "job_id_alignstats=job-2" in summary.command
    assert "inbox_key=x{job_id:summary}.bam" in summary.command
