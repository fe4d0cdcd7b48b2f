"""The Controller facade on a local profile: the RUNNABLE watchdog, cancel, the status line."""

from __future__ import annotations

import time

from tests.support.fakes import inbox_event


def test_runnable_watchdog_and_cancel(ctl) -> None:
    ctl.handle_event(inbox_event(ctl, "s.bam"))
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
