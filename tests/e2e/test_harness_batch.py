"""The harness itself: moto's Batch runs real local processes, with real states, dependsOn and logs."""

from __future__ import annotations

import sys
import time
from typing import Any

from tests.support.harness import MotoBatch, create_batch_queue, wait_for
from tests.support.localdocker import resolve_command, should_retry

PY = sys.executable


def _register(batch: Any, name: str, command: list[str], env: dict[str, str] | None = None) -> str:
    return batch.register_job_definition(
        jobDefinitionName=name,
        type="container",
        containerProperties={
            "image": "alignbatch-worker:e2e",
            "vcpus": 1,
            "memory": 512,
            "command": command,
            "environment": [{"name": k, "value": v} for k, v in (env or {}).items()],
        },
    )["jobDefinitionArn"]


def _final(batch: Any, job_id: str, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        return job if job["status"] in ("SUCCEEDED", "FAILED") else None

    return wait_for(f"job {job_id} to finish", done, timeout, 0.3)


def test_resolve_command_applies_the_image_entrypoint(tmp_path: Any) -> None:
    (tmp_path / "alignbatch-worker").write_text("")
    assert resolve_command(["alignbatch-worker", "--", "x"], tmp_path) == [
        str(tmp_path / "alignbatch-worker"),
        "--",
        "x",
    ]
    assert resolve_command(["--", "x"], tmp_path)[0] == str(tmp_path / "alignbatch-worker")
    assert resolve_command(["python -c 'print(1)'"], tmp_path) == ["python", "-c", "print(1)"]


def test_jobs_run_as_processes_with_states_dependencies_and_logs(mb: MotoBatch) -> None:
    batch = mb.client("batch")
    queue = create_batch_queue(mb)
    code = (
        "import os, sys, time; import boto3;"
        "time.sleep(float(os.environ['SLEEP']));"
        "boto3.client('s3').put_object(Bucket='harness', Key=os.environ['AWS_BATCH_JOB_ID'], Body=b'x');"
        "e = os.environ;"
        "print('hello from', e['AWS_BATCH_JOB_ID'], e['AWS_BATCH_JOB_ATTEMPT'], e['GREETING']);"
        "sys.exit(int(os.environ.get('CODE', '0')))"
    )
    jd = _register(batch, "harness-py", [PY, "-c", code], {"GREETING": "hi", "SLEEP": "0"})
    mb.client("s3").create_bucket(Bucket="harness")

    first = batch.submit_job(
        jobName="first",
        jobQueue=queue,
        jobDefinition=jd,
        containerOverrides={"environment": [{"name": "SLEEP", "value": "2"}]},
    )["jobId"]
    second = batch.submit_job(
        jobName="second", jobQueue=queue, jobDefinition=jd, dependsOn=[{"jobId": first}]
    )["jobId"]
    failing = batch.submit_job(
        jobName="failing",
        jobQueue=queue,
        jobDefinition=jd,
        containerOverrides={"environment": [{"name": "CODE", "value": "65"}]},
    )["jobId"]
    blocked = batch.submit_job(
        jobName="blocked", jobQueue=queue, jobDefinition=jd, dependsOn=[{"jobId": failing}]
    )["jobId"]

    seen: dict[str, set[str]] = {first: set(), second: set()}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for job in batch.describe_jobs(jobs=[first, second])["jobs"]:
            seen[job["jobId"]].add(job["status"])
        if seen[first] & {"SUCCEEDED", "FAILED"}:
            break
        time.sleep(0.2)
    # The first job sleeps 2 s in RUNNING; its dependant waits in PENDING meanwhile (the states in
    # between are transient in moto and only seen by luck).
    assert "RUNNING" in seen[first]
    assert "PENDING" in seen[second]

    assert _final(batch, first)["status"] == "SUCCEEDED"
    done_second = _final(batch, second)
    assert done_second["status"] == "SUCCEEDED"
    assert done_second["startedAt"] >= _final(batch, first)["stoppedAt"]
    assert _final(batch, failing)["status"] == "FAILED"
    assert _final(batch, blocked)["status"] == "FAILED"

    listed = {j["jobId"]: j for j in batch.list_jobs(jobQueue=queue)["jobSummaryList"]}
    assert listed[failing]["container"]["exitCode"] == 65
    assert listed[first]["container"]["exitCode"] == 0
    keys = {o["Key"] for o in mb.client("s3").list_objects_v2(Bucket="harness")["Contents"]}
    assert keys == {first, second, failing}

    runs = {r["job_id"]: r for r in mb.runs()}
    assert set(runs) == {first, second, failing}  # the blocked job never started a process
    assert runs[failing]["exit_code"] == 65

    logs = mb.client("logs")
    stream = _final(batch, first)["container"]["logStreamName"]
    events = logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream)["events"]
    assert any(e["message"] == f"hello from {first} 1 hi" for e in events)


def test_terminate_kills_the_process_with_137(mb: MotoBatch) -> None:
    batch = mb.client("batch")
    queue = create_batch_queue(mb)
    jd = _register(batch, "sleeper", [PY, "-c", "import time; print('up', flush=True); time.sleep(600)"])
    job = batch.submit_job(jobName="sleeper", jobQueue=queue, jobDefinition=jd)["jobId"]
    wait_for("the sleeper to run", lambda: any(r["started"] for r in mb.runs()), 30, 0.2)
    batch.terminate_job(jobId=job, reason="operator says stop")
    final = _final(batch, job)
    assert final["status"] == "FAILED"
    assert final["statusReason"] == "operator says stop"
    listed = {j["jobId"]: j for j in batch.list_jobs(jobQueue=queue)["jobSummaryList"]}
    assert listed[job]["container"]["exitCode"] == 137
    assert mb.runs()[0]["killed"] is True


def test_capacity_limits_concurrent_processes_and_forget_removes_a_job(mb: MotoBatch) -> None:
    batch = mb.client("batch")
    queue = create_batch_queue(mb)
    mb.configure_jobs(max_concurrent=2)
    jd = _register(batch, "short", [PY, "-c", "import time; time.sleep(1)"])
    ids = [
        batch.submit_job(jobName=f"short-{i}", jobQueue=queue, jobDefinition=jd)["jobId"] for i in range(4)
    ]
    for job_id in ids:
        assert _final(batch, job_id)["status"] == "SUCCEEDED"
    runs = mb.runs()
    overlaps = max(sum(1 for o in runs if o["started"] <= r["started"] < o["ended"]) for r in runs)
    assert overlaps <= 2

    assert mb.forget_job(ids[0])
    assert batch.describe_jobs(jobs=[ids[0]])["jobs"] == []
    assert ids[0] not in {j["jobId"] for j in batch.list_jobs(jobQueue=queue)["jobSummaryList"]}


def test_env_rules_reach_matching_jobs_only(mb: MotoBatch) -> None:
    batch = mb.client("batch")
    queue = create_batch_queue(mb)
    mb.configure_jobs(env_rules=[{"match": "picked*", "env": {"CODE": "3"}}])
    jd = _register(batch, "env", [PY, "-c", "import os, sys; sys.exit(int(os.environ.get('CODE', '0')))"])
    picked = batch.submit_job(jobName="picked-1", jobQueue=queue, jobDefinition=jd)["jobId"]
    other = batch.submit_job(jobName="other-1", jobQueue=queue, jobDefinition=jd)["jobId"]
    assert _final(batch, picked)["status"] == "FAILED"
    assert _final(batch, other)["status"] == "SUCCEEDED"


def test_should_retry_follows_batch_rules() -> None:
    strategy = {
        "attempts": 3,
        "evaluateOnExit": [
            {"OnStatusReason": "Host EC2*", "Action": "RETRY"},
            {"onExitCode": "75", "action": "RETRY"},
            {"onExitCode": "*", "action": "EXIT"},
        ],
    }
    assert should_retry(strategy, 1, 75) and should_retry(strategy, 2, 75)
    assert not should_retry(strategy, 3, 75)
    assert not should_retry(strategy, 1, 65)
    assert not should_retry(None, 1, 75)
    assert should_retry({"attempts": 2}, 1, 1)


def test_retry_strategy_is_applied_with_attempt_numbers(mb: MotoBatch) -> None:
    batch = mb.client("batch")
    queue = create_batch_queue(mb)
    code = (
        "import os, sys; a = int(os.environ['AWS_BATCH_JOB_ATTEMPT']); print('attempt', a);"
        "sys.exit(0 if a == 3 else 75)"
    )
    jd = batch.register_job_definition(
        jobDefinitionName="flaky",
        type="container",
        retryStrategy={
            "attempts": 3,
            "evaluateOnExit": [
                {"onExitCode": "75", "action": "RETRY"},
                {"onExitCode": "*", "action": "EXIT"},
            ],
        },
        containerProperties={"image": "x", "vcpus": 1, "memory": 512, "command": [PY, "-c", code]},
    )["jobDefinitionArn"]
    job = batch.submit_job(jobName="flaky", jobQueue=queue, jobDefinition=jd)["jobId"]
    assert _final(batch, job)["status"] == "SUCCEEDED"
    assert [(r["attempt"], r["exit_code"]) for r in mb.runs()] == [(1, 75), (2, 75), (3, 0)]
