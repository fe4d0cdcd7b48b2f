"""Spot fallback: the pure queue decision, and a reclaimed step planned again by reconcile."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from controller.ledger import Ledger
from controller.ledger.schema import ADDED_COLUMNS, SCHEMA
from controller.placement import Capacity, QueuePolicy, capacity_of, is_reclaim
from tests.support.fakes import ImmediateExecutor, ScriptedExecutor, local_controller, submit_run

RECLAIMED = "Host EC2 (instance i-0abc) terminated."


def test_reclaim_is_recognised_by_its_status_reason_only() -> None:
    assert is_reclaim(RECLAIMED)
    assert is_reclaim("Host EC2 (instance i-0abc) retired.")
    for other in (None, "", "Essential container in task exited", "host ec2 lower case", "CannotPull"):
        assert not is_reclaim(other)


def test_queue_after_n_reclaims_is_the_next_in_order_and_the_last_stays() -> None:
    policy = QueuePolicy(queues=("spot", "ondemand"), reclaims_before_fallback=2, max_reclaims=5)
    assert [policy.queue_for(n) for n in range(6)] == ["spot", "spot"] + ["ondemand"] * 4
    three = QueuePolicy(queues=("a", "b", "c"), reclaims_before_fallback=1)
    assert [three.queue_for(n) for n in range(4)] == ["a", "b", "c", "c"]
    never = QueuePolicy(queues=("spot", "ondemand"), reclaims_before_fallback=0)
    assert {never.queue_for(n) for n in range(5)} == {"spot"}


def test_reattempt_only_for_reclaims_and_up_to_the_cap() -> None:
    policy = QueuePolicy(queues=("spot", "ondemand"), reclaims_before_fallback=2, max_reclaims=3)
    assert policy.reattempt(0, RECLAIMED) and policy.reattempt(2, RECLAIMED)
    assert not policy.reattempt(3, RECLAIMED)  # the fourth reclaim fails the run
    assert not policy.reattempt(0, "Essential container in task exited")
    with pytest.raises(ValueError):
        QueuePolicy(queues=())


def test_capacity_from_the_compute_environment_type() -> None:
    assert capacity_of("SPOT") is Capacity.SPOT and capacity_of("FARGATE_SPOT") is Capacity.SPOT
    assert capacity_of("EC2") is Capacity.ON_DEMAND and capacity_of("FARGATE") is Capacity.ON_DEMAND
    assert capacity_of(None) is None and capacity_of("UNMANAGED") is None


def _with_policy(ctl, policy: QueuePolicy) -> None:
    ctl.queues = ctl.submitter.queues = ctl.reconciler.queues = policy


def test_a_reclaimed_step_is_planned_again_with_its_downstream_and_falls_back_after_n(
    tmp_path: Path,
) -> None:
    executor = ScriptedExecutor()
    ctl = local_controller(tmp_path, executor)
    _with_policy(ctl, QueuePolicy(queues=("spot", "ondemand"), reclaims_before_fallback=2, max_reclaims=3))
    run_id = submit_run(ctl, "s.bam", "x", steps=("index", "alignstats", "summary"))
    executor.states.update({"x-index": "SUCCEEDED", "x-alignstats": "FAILED", "x-summary": "PENDING"})
    executor.reasons["x-alignstats"] = RECLAIMED

    ctl.reconcile()
    jobs = {j.step: j for j in ctl.ledger.jobs_for_run(run_id)}
    assert ctl.ledger.get_run(run_id).state == "active"  # a reclaim does not fail the run
    assert jobs["index"].state == "SUCCEEDED"  # upstream of the reclaimed step: kept
    assert (jobs["alignstats"].state, jobs["alignstats"].reclaims) == ("PLANNED", 1)
    assert jobs["alignstats"].name.endswith("-alignstats-a1-r1")
    assert jobs["summary"].state == "PLANNED" and jobs["summary"].name.endswith("-summary-a1-r1")
    assert executor.cancelled == ["x-summary"]  # it waited on the old alignstats job id
    [earlier] = jobs["alignstats"].earlier_attempts
    assert earlier["job_id"] == "x-alignstats" and earlier["reason"] == RECLAIMED
    reclaims = ctl.metrics.registry.get_sample_value
    assert reclaims("alignbatch_reclaims_total", {"step": "alignstats", "next_queue": "spot"}) == 1

    # A late status of the old summary job never touches the new plan (its id is not the step's).
    executor.states["x-summary"] = "FAILED"
    stale = replace(jobs["summary"], job_id="x-summary")
    assert not ctl.reconciler._apply_status(stale, executor.describe(["x-summary"])["x-summary"])
    assert ctl.ledger.jobs_for_run(run_id)[2].state == "PLANNED"


def test_a_ledger_from_before_the_placement_columns_gets_them_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    schema = SCHEMA
    for _table, column, declaration in ADDED_COLUMNS:
        schema = schema.replace(f"    {column} {declaration},\n", "")
    assert "reclaims" not in schema
    db.executescript(schema)
    db.close()
    ledger = Ledger(path)
    columns = {r["name"] for r in ledger._query("PRAGMA table_info(jobs)")}
    assert {c for _t, c, _d in ADDED_COLUMNS} <= columns


def test_submission_sends_each_attempt_to_the_queue_its_reclaims_choose(tmp_path: Path) -> None:
    executor = ImmediateExecutor()
    ctl = local_controller(tmp_path, executor)
    policy = QueuePolicy(queues=("spot", "ondemand"), reclaims_before_fallback=2, max_reclaims=3)
    _with_policy(ctl, policy)
    run_id = submit_run(ctl, "s.bam", "x", steps=())
    queues = []
    for attempt in range(4):
        ctl.submit_ready()
        jobs = {j.step: j for j in ctl.ledger.jobs_for_run(run_id)}
        stats = jobs["alignstats"]
        queues.append(stats.queue)
        assert executor.requests[-2].queue == stats.queue  # alignstats, then summary
        if attempt == 3:
            break
        ctl.ledger.update_job(run_id, "index", state="SUCCEEDED")
        downstream = ctl.ledger.replan_reclaimed(run_id, "alignstats", job_id=stats.job_id, reason=RECLAIMED)
        assert downstream == [jobs["summary"].job_id]
    assert queues == ["spot", "spot", "ondemand", "ondemand"]
    names = [r.name for r in executor.requests if r.step == "alignstats"]
    assert len(set(names)) == 4  # every submission has its own name: intents resolve to the right job
    # Past the cap the reclaim fails the run like any other failure.
    stats = ctl.ledger.jobs_for_run(run_id)[1]
    assert stats.reclaims == 3 and not policy.reattempt(stats.reclaims, RECLAIMED)
