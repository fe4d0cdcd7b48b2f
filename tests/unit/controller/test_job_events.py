"""Batch Job State Change events (#14): parsed, applied forward only (duplicates and out-of-order delivery
change nothing), runs finished without a DescribeJobs call, reconcile slowed to a sweep."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from controller.events import (
    JobStateEvent,
    MalformedMessage,
    job_state_change_body,
    parse_job_state_change,
    s3_notification_body,
)
from controller.factory import mode_for
from controller.states import JobState, RunState, job_event_allowed
from tests.support.fakes import ListSource, ScriptedExecutor, local_controller, submit_run


def _ev(job_id: str, status: str, **kw: object) -> JobStateEvent:
    fields: dict[str, object] = dict(
        job_id=job_id, job_name="n", status=status, reason=None, exit_code=None, log_stream=None,
        started_at=None, stopped_at=None, event_time=None,
    )  # fmt: skip
    fields.update(kw)
    return JobStateEvent(**fields)  # type: ignore[arg-type]


def test_a_state_change_body_round_trips_and_other_bodies_are_not_state_changes() -> None:
    ev = _ev("j1", "FAILED", reason="Essential container exited", exit_code=3, log_stream="ls/1",
             started_at=1000.5, stopped_at=1010.0)  # fmt: skip
    parsed = parse_job_state_change(job_state_change_body(ev))
    assert parsed is not None
    assert (parsed.job_id, parsed.status, parsed.exit_code, parsed.reason, parsed.log_stream) == (
        "j1", "FAILED", 3, "Essential container exited", "ls/1",
    )  # fmt: skip
    assert (parsed.started_at, parsed.stopped_at) == (1000.5, 1010.0)
    sns = json.dumps({"Type": "Notification", "Message": job_state_change_body(ev)})
    assert parse_job_state_change(sns) == parsed
    assert parse_job_state_change(s3_notification_body([])) is None
    assert parse_job_state_change(json.dumps({"detail-type": "Object Created", "detail": {}})) is None


def test_the_exit_code_of_the_last_attempt_is_used_when_the_container_has_none() -> None:
    body = json.loads(job_state_change_body(_ev("j1", "FAILED")))
    body["detail"]["attempts"] = [{"container": {"exitCode": 137, "logStreamName": "ls/2"}}]
    parsed = parse_job_state_change(json.dumps(body))
    assert parsed is not None and (parsed.exit_code, parsed.log_stream) == (137, "ls/2")


@pytest.mark.parametrize(
    "body",
    ["not json", json.dumps({"detail-type": "Batch Job State Change", "detail": {"status": "RUNNING"}})],
)
def test_a_broken_state_change_is_malformed(body: str) -> None:
    with pytest.raises(MalformedMessage):
        parse_job_state_change(body)


def test_events_only_move_a_job_forward() -> None:
    assert job_event_allowed(JobState.SUBMITTED, JobState.RUNNING)
    assert job_event_allowed(JobState.RUNNING, JobState.SUCCEEDED)
    assert not job_event_allowed(JobState.RUNNING, JobState.RUNNABLE)  # a late RUNNABLE
    assert not job_event_allowed(JobState.SUCCEEDED, JobState.RUNNING)
    assert not job_event_allowed(JobState.FAILED, JobState.SUCCEEDED)  # a final state is final


def test_duplicate_and_out_of_order_events_never_move_a_job_back(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    ctl = local_controller(tmp_path, executor)
    run_id = submit_run(ctl, "a.bam", "a")

    def state() -> str:
        return {j.step: j.state for j in ctl.ledger.jobs_for_run(run_id)}["index"]

    rec = ctl.reconciler
    assert rec.apply_job_events([_ev("a-index", "RUNNING", log_stream="ls/a")]) == 1
    assert state() == JobState.RUNNING
    assert rec.apply_job_events([_ev("a-index", "RUNNABLE"), _ev("a-index", "RUNNING")]) == 0  # late, dup
    assert state() == JobState.RUNNING
    assert rec.apply_job_events([_ev("a-index", "SUCCEEDED", exit_code=0), _ev("a-index", "STARTING")]) == 1
    assert rec.apply_job_events([_ev("a-index", "SUCCEEDED"), _ev("a-index", "FAILED")]) == 0
    assert state() == JobState.SUCCEEDED
    assert rec.apply_job_events([_ev("someone-elses", "RUNNING")]) == 0
    sample = ctl.metrics.registry.get_sample_value
    assert sample("alignbatch_job_events_total", {"outcome": "applied"}) == 2
    assert sample("alignbatch_job_events_total", {"outcome": "stale"}) == 5
    assert sample("alignbatch_job_events_total", {"outcome": "unknown"}) == 1
    assert executor.batches == []  # not one DescribeJobs


def test_a_failed_event_fails_the_run_without_describing_it(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    ctl = local_controller(tmp_path, executor)
    run_id = submit_run(ctl, "a.bam", "a")
    ctl.reconciler.apply_job_events([_ev("a-index", "FAILED", exit_code=2, reason="bad input")])
    run = ctl.ledger.get_run(run_id)
    assert run is not None and run.state == RunState.FAILED
    jobs = {j.step: j for j in ctl.ledger.jobs_for_run(run_id)}
    assert (jobs["index"].exit_code, jobs["index"].reason) == (2, "bad input")
    assert executor.batches == []


def test_poll_job_events_applies_then_deletes_every_message(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    source = ListSource([
        job_state_change_body(_ev("a-index", "RUNNING")), "{broken",
        s3_notification_body([]), job_state_change_body(_ev("a-index", "RUNNING")),
    ])  # fmt: skip
    ctl = local_controller(tmp_path, executor)
    ctl.state_source = source
    run_id = submit_run(ctl, "a.bam", "a")
    assert ctl.poll_job_events() == 4
    assert len(source.acked) == 4
    assert {j.step: j.state for j in ctl.ledger.jobs_for_run(run_id)}["index"] == JobState.RUNNING
    sample = ctl.metrics.registry.get_sample_value
    assert [sample("alignbatch_job_events_total", {"outcome": o}) for o in ("applied", "stale")] == [1, 1]
    assert [sample("alignbatch_job_events_total", {"outcome": o}) for o in ("malformed", "ignored")] == [1, 1]


def test_no_event_is_received_while_the_ledger_cannot_commit(tmp_path: Path) -> None:
    source = ListSource([job_state_change_body(_ev("a-index", "RUNNING"))])
    ctl = local_controller(tmp_path, ScriptedExecutor())
    ctl.state_source = source
    ctl.ledger.writable = False
    ctl._next_probe = float("inf")
    assert ctl.poll_job_events() == 0 and source.pending and not source.acked


def test_with_events_reconcile_becomes_a_slower_sweep_that_still_catches_unseen_jobs(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    ctl = local_controller(tmp_path, executor)
    assert ctl.reconcile_seconds == ctl.cfg.batch.reconcile_seconds
    ctl.state_source = ListSource([])
    assert ctl.reconcile_seconds == ctl.cfg.batch.events_sweep_seconds
    submit_run(ctl, "a.bam", "a")
    executor.states["a-index"] = "RUNNING"  # no event was seen for it
    assert ctl.reconcile() == 1
    assert executor.batches == [["a-index"]]


def test_events_enabled_without_a_state_queue_is_a_config_problem(tmp_path: Path) -> None:
    ctl = local_controller(tmp_path, ScriptedExecutor())
    cfg = replace(ctl.cfg, local_dir=None, batch=replace(ctl.cfg.batch, events_enabled=True))
    assert any("state_queue_url" in p for p in mode_for(cfg).problems(cfg))
