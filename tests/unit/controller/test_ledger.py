"""The SQLite ledger: identity dedup, two-phase submission, retry, results (latest wins)."""

from __future__ import annotations

import threading

from controller.config import DEFAULT_TIERS, PipelineOptions
from controller.ledger import JobRow, Ledger
from controller.model import InputObject
from controller.planner import PlanContext, plan_run
from controller.states import JobState, RunState

PLANNED, INTENT, SUBMITTED = JobState.PLANNED, JobState.INTENT, JobState.SUBMITTED
SUCCEEDED, FAILED = JobState.SUCCEEDED, JobState.FAILED
RUN_ACTIVE, RUN_FAILED = RunState.ACTIVE, RunState.FAILED

CTX = PlanContext("s3://inbox", "s3://results", PipelineOptions(), DEFAULT_TIERS, "0.1.0")


def jobs_in(led: Ledger, states: list[str]) -> list[JobRow]:
    return [job for page in led.job_pages(states) for job in page]


def make(tmp_path, key="x.bam", etag="e1"):
    led = Ledger(tmp_path / "state.db")
    o = InputObject("inbox", key, 10, etag, None, False)
    return led, o, plan_run(o, CTX)


def test_wal_and_one_run_per_identity(tmp_path) -> None:
    led, o, plan = make(tmp_path)
    assert led._query("PRAGMA journal_mode")[0][0] == "wal"
    assert led.create_run(o, plan) is True
    assert led.create_run(o, plan) is False
    assert led.run_counts()[RUN_ACTIVE] == 1
    assert len(led.jobs_for_run(plan.run_id)) == 3
    assert led.run_exists("inbox", "x.bam", "e1")


def test_concurrent_duplicates_create_one_run(tmp_path) -> None:
    led, o, plan = make(tmp_path)
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(led.create_run(o, plan))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1


def test_two_phase_submit_survives_reopen(tmp_path) -> None:
    led, o, plan = make(tmp_path)
    led.create_run(o, plan)
    led.mark_intent(plan.run_id, "index")
    led.close()
    led = Ledger(tmp_path / "state.db")
    [job] = jobs_in(led, [INTENT])
    assert job.step == "index" and job.job_id is None
    led.mark_submitted(plan.run_id, "index", "JOB-1")
    led.mark_submitted(plan.run_id, "index", "JOB-2")  # a second call must not overwrite
    [job] = jobs_in(led, [SUBMITTED])
    assert job.job_id == "JOB-1" and job.attempts == 1


def test_terminal_states_are_sticky(tmp_path) -> None:
    led, o, plan = make(tmp_path)
    led.create_run(o, plan)
    led.mark_submitted(plan.run_id, "index", "J")
    assert led.update_job(plan.run_id, "index", state="RUNNING", log_stream="ls/1")
    assert not led.update_job(plan.run_id, "index", state="RUNNING", log_stream="ls/1")
    assert led.update_job(plan.run_id, "index", state=SUCCEEDED, exit_code=0)
    assert not led.update_job(plan.run_id, "index", state="RUNNING")
    assert led.jobs_for_run(plan.run_id)[0].log_stream == "ls/1"


def test_retry_reuses_succeeded_steps(tmp_path) -> None:
    led, o, plan = make(tmp_path)
    led.create_run(o, plan)
    led.mark_submitted(plan.run_id, "index", "J1")
    led.update_job(plan.run_id, "index", state=SUCCEEDED, exit_code=0)
    led.mark_submitted(plan.run_id, "alignstats", "J2")
    led.update_job(plan.run_id, "alignstats", state=FAILED, exit_code=75, reason="boom")
    assert led.retry_run(plan.run_id) == []  # still active: nothing to retry
    led.finish_run(plan.run_id, RUN_FAILED, "alignstats failed")
    assert led.retry_run(plan.run_id) == ["alignstats", "summary"]
    jobs = {j.step: j for j in led.jobs_for_run(plan.run_id)}
    assert jobs["index"].state == SUCCEEDED and jobs["index"].job_id == "J1"
    assert jobs["alignstats"].state == PLANNED and jobs["alignstats"].name.endswith("-a2")
    assert jobs["alignstats"].job_spec.name == jobs["alignstats"].name
    assert led.get_run(plan.run_id).attempt == 2


def test_results_latest_wins(tmp_path) -> None:
    led, _, _ = make(tmp_path)
    assert led.upsert_result("x.bam", "r1", 10.0, {"run_id": "r1"})
    assert led.upsert_result("x.bam", "r2", 20.0, {"run_id": "r2"})
    assert not led.upsert_result("x.bam", "r1", 15.0, {"run_id": "r1"})
    assert led.result_rows() == [{"run_id": "r2"}]


def test_index_objects(tmp_path) -> None:
    led, _, _ = make(tmp_path)
    led.record_index("inbox", "x.bam.bai", "e")
    assert led.has_index("inbox", ["x.bai", "x.bam.bai"])
    assert not led.has_index("other", ["x.bam.bai"])


def test_job_pages_walk_each_job_once_while_states_change(tmp_path) -> None:
    led = Ledger(tmp_path / "state.db")
    plans = []
    for i in range(7):
        o = InputObject("inbox", f"s{i}.bam", 10, f"e{i}", None, False)
        plans.append(plan_run(o, CTX))
        led.create_run(o, plans[-1])
        led.mark_submitted(plans[-1].run_id, "index", f"J{i}")
    seen: list[str] = []
    pages = led.job_pages([SUBMITTED, "RUNNING"], page_size=3)
    for page in pages:
        assert len(page) <= 3
        seen += [j.job_id or "" for j in page]
        # What reconcile does mid-walk: jobs change state (still in the walked set, or out of it).
        led.update_job(plans[6].run_id, "index", state="RUNNING")
        led.update_job(plans[5].run_id, "index", state=SUCCEEDED, exit_code=0)
    assert seen == ["J0", "J1", "J2", "J3", "J4", "J6"]  # J5 finished before its page; J6 once
    assert [j.job_id for j in jobs_in(led, ["RUNNING"])] == ["J6"]
    assert list(led.job_pages(["RUNNABLE"])) == []


def test_a_ledger_written_before_typed_commands_still_loads(tmp_path) -> None:
    """Old specs hold the command as a plain argv with {job_id:STEP} tokens in the planner's meta."""
    import json

    led, o, plan = make(tmp_path)
    led.create_run(o, plan)
    old = list(plan.job("summary").worker.argv())
    old = [a + "{job_id:alignstats}" if a == "job_id_alignstats=" else a for a in old]
    old = [a + "{job_id:index}" if a == "job_id_index=" else a for a in old]
    spec = json.loads(plan.job("summary").to_json())
    spec["command"] = old
    with led._tx() as db:
        db.execute("UPDATE jobs SET spec = ? WHERE step = 'summary'", (json.dumps(spec),))
    job = next(j for j in led.jobs_for_run(plan.run_id) if j.step == "summary")
    assert job.job_spec.worker == plan.job("summary").worker
    argv = job.job_spec.worker.argv({"index": "J1", "alignstats": "J2"})
    assert "job_id_alignstats=J2" in argv and "job_id_index=J1" in argv
