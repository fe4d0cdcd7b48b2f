"""The job/run transition table and the ledger enforcing it."""

from __future__ import annotations

import pytest

from controller.config import DEFAULT_TIERS, PipelineOptions
from controller.ledger import Ledger
from controller.model import InputObject
from controller.planner import PlanContext, plan_run
from controller.states import (
    BATCH_ACTIVE,
    JOB_TERMINAL,
    JOB_TRANSITIONS,
    RUN_TRANSITIONS,
    JobState,
    RunState,
    job_move_allowed,
    run_move_allowed,
)

CTX = PlanContext("s3://inbox", "s3://results", PipelineOptions(), DEFAULT_TIERS, "0.1.0")


def test_every_state_has_a_row_and_values_are_the_stored_strings() -> None:
    assert set(JOB_TRANSITIONS) == set(JobState) and set(RUN_TRANSITIONS) == set(RunState)
    assert JobState.RUNNABLE == "RUNNABLE" and f"{RunState.ACTIVE}" == "active"


def test_the_table() -> None:
    assert not JOB_TRANSITIONS[JobState.SUCCEEDED]  # a success is reused by retries, never redone
    for final in JOB_TERMINAL:
        assert not any(job_move_allowed(final, a) for a in BATCH_ACTIVE)
    assert job_move_allowed("PLANNED", "INTENT") and job_move_allowed("INTENT", "SUBMITTED")
    assert not job_move_allowed("PLANNED", "RUNNING")  # the executor never saw it
    assert job_move_allowed("RUNNING", "RUNNABLE")  # a Batch retry attempt
    assert job_move_allowed("FAILED", "PLANNED") and not job_move_allowed("SUCCEEDED", "PLANNED")
    assert not job_move_allowed("RUNNING", "MYSTERY") and not job_move_allowed("MYSTERY", "RUNNING")
    assert run_move_allowed("active", "failed") and run_move_allowed("failed", "active")
    assert not run_move_allowed("succeeded", "active") and not run_move_allowed("rejected", "active")


@pytest.fixture()
def led(tmp_path):
    led = Ledger(tmp_path / "state.db")
    o = InputObject("inbox", "x.bam", 10, "e1", None, False)
    plan = plan_run(o, CTX)
    led.create_run(o, plan)
    return led, plan.run_id


def _state(led: Ledger, run_id: str, step: str) -> str:
    return next(j.state for j in led.jobs_for_run(run_id) if j.step == step)


def test_ledger_refuses_a_move_the_table_forbids(led) -> None:
    led, run_id = led
    assert not led.update_job(run_id, "index", state="RUNNING")  # PLANNED -> RUNNING: never submitted
    assert _state(led, run_id, "index") == "PLANNED"
    led.mark_submitted(run_id, "index", "J1")
    assert led.update_job(run_id, "index", state="SUCCEEDED")
    assert not led.update_job(run_id, "index", state="FAILED", log_stream="new")
    assert _state(led, run_id, "index") == "SUCCEEDED"
    assert not led.update_job(run_id, "index", state="NOT_A_STATE")


def test_requeue_only_moves_an_active_job(led) -> None:
    led, run_id = led
    assert not led.requeue_job(run_id, "index")  # PLANNED: nothing to forget
    led.mark_submitted(run_id, "index", "J1")
    led.update_job(run_id, "index", state="SUCCEEDED")
    assert not led.requeue_job(run_id, "index")  # a finished job is never resubmitted
    assert _state(led, run_id, "index") == "SUCCEEDED"
    led.mark_submitted(run_id, "alignstats", "J2")
    assert led.requeue_job(run_id, "alignstats")
    job = next(j for j in led.jobs_for_run(run_id) if j.step == "alignstats")
    assert job.state == "PLANNED" and job.job_id is None


def test_finish_run_only_from_active(led) -> None:
    led, run_id = led
    assert led.finish_run(run_id, RunState.CANCELLED, "operator")
    assert not led.finish_run(run_id, RunState.SUCCEEDED)
    assert led.get_run(run_id).state == "cancelled"


def test_repeats_are_quiet_and_refusals_are_logged(led, monkeypatch) -> None:
    led, run_id = led
    seen: list[tuple[str, str, str]] = []
    monkeypatch.setattr(led, "_refused", lambda what, old, new, **ids: seen.append((what, old, new)))
    led.mark_submitted(run_id, "index", "J1")
    led.mark_submitted(run_id, "index", "J2")  # a repeat: quiet, the first id stands
    assert led.finish_run(run_id, RunState.FAILED, "x")
    assert not led.finish_run(run_id, RunState.FAILED, "x")  # a repeat: quiet
    assert seen == []
    assert not led.finish_run(run_id, RunState.SUCCEEDED)
    led.update_job(run_id, "index", state="SUCCEEDED")
    assert not led.update_job(run_id, "index", state="RUNNING")
    assert seen == [("run", "failed", "succeeded"), ("job", "SUCCEEDED", "RUNNING")]
