"""The AWS path on the moto server: S3 → SQS notifications → controller → Batch SubmitJob.

Resources are created through the API (bucket, queue + DLQ with a redrive policy, bucket notification,
VPC/subnet/SG/role, compute environment, job queue, job definitions). Batch runs with
`{"batch": {"use_docker": false}}`: every job is SUCCEEDED inside SubmitJob, which is enough to check what
the controller submits (dependsOn, commands, tags, resources) and how it deduplicates.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from controller.config import load_config
from controller.daemon import build_controller
from controller.metrics import Metrics
from tests.support.aws_env import REGION, AwsEnv, create_aws_env, drain_notifications


@pytest.fixture()
def env(aws: str) -> AwsEnv:
    return create_aws_env(aws)


def make_controller(env: AwsEnv, tmp_path: Path, *, extra: str = "") -> tuple[Any, Any]:
    cfg_path = tmp_path / "controller.toml"
    cfg_path.write_text(env.config_toml(tmp_path / "state.db", extra=extra))
    cfg = load_config(cfg_path)
    ctl = build_controller(cfg, metrics=Metrics(), once=True)
    return ctl, cfg


def drain(ctl: Any, rounds: int = 6) -> None:
    """Poll until the queue is empty for a couple of rounds, submitting as we go."""
    empty = 0
    while empty < 2 and rounds > 0:
        if ctl.poll().received == 0:
            empty += 1
        ctl.submit_ready()
        rounds -= 1


def metric(ctl: Any, name: str, **labels: str) -> float:
    value = ctl.metrics.registry.get_sample_value(name, labels)
    return float(value or 0.0)


def test_objects_in_inbox_become_chained_batch_jobs(env: AwsEnv, tmp_path: Path, data_dir: Path) -> None:
    s3, batch = env.client("s3"), env.client("batch")
    s3.put_object(
        Bucket=env.inbox_bucket,
        Key="incoming/run 1/NA12878 ü.bam",
        Body=(data_dir / "i_edge.bam").read_bytes(),
    )
    s3.put_object(
        Bucket=env.inbox_bucket, Key="incoming/indexed.bam", Body=(data_dir / "h_source.bam").read_bytes()
    )
    s3.put_object(
        Bucket=env.inbox_bucket,
        Key="incoming/indexed.bam.bai",
        Body=(data_dir / "h_source.bam.bai").read_bytes(),
    )
    s3.put_object(Bucket=env.inbox_bucket, Key="incoming/notes.txt", Body=b"hello")
    drain_notifications(env, 5)  # TestEvent + 4 objects
    ctl, _ = make_controller(env, tmp_path)
    sent: dict[str, dict] = {}
    # Observe (not alter) the real requests the executor sends, to check what moto does not echo back.
    ctl.executor.client.meta.events.register(
        "provide-client-params.batch.SubmitJob",
        lambda params, **_: sent.__setitem__(params["jobName"], params),
    )
    drain(ctl)

    assert metric(ctl, "alignbatch_events_total", outcome="test_event") == 1
    assert metric(ctl, "alignbatch_events_total", outcome="accepted") == 2
    assert metric(ctl, "alignbatch_events_total", outcome="ignored") == 1
    assert metric(ctl, "alignbatch_events_total", outcome="index_recorded") == 1

    runs = {r.key: r for r in ctl.ledger.runs()}
    odd = runs["incoming/run 1/NA12878 ü.bam"]
    jobs = {j.step: j for j in ctl.ledger.jobs_for_run(odd.run_id)}
    assert set(jobs) == {"index", "alignstats", "summary"}
    assert all(j.job_id for j in jobs.values())
    described = {d["jobId"]: d for d in batch.describe_jobs(jobs=[j.job_id for j in jobs.values()])["jobs"]}
    index, stats, summary = (described[jobs[s].job_id] for s in ("index", "alignstats", "summary"))
    assert stats["dependsOn"] == [{"jobId": jobs["index"].job_id}]
    assert summary["dependsOn"] == [{"jobId": jobs["alignstats"].job_id}]
    assert index["jobName"] == jobs["index"].name and index["jobName"].endswith("-index-a1")
    input_uri = f"s3://ab-inbox/incoming/run 1/NA12878 ü.bam?etag={odd.etag}"  # #14: pinned to the event
    assert stats["container"]["command"] == [
        "alignbatch-worker", "--index", "s3://ab-results/alignbatch/indexes/run 1/NA12878 ü.bam.bai", "--",
        "alignstats", "-C", "-i", input_uri,
        "-o", "s3://ab-results/alignbatch/reports/run 1/NA12878 ü.bam.alignstats.json",
    ]  # fmt: skip
    assert f"job_id_alignstats={jobs['alignstats'].job_id}" in summary["container"]["command"]
    assert stats["tags"]["alignbatch:run-id"] == odd.run_id
    assert stats["tags"]["alignbatch:step"] == "alignstats"
    assert stats["tags"]["alignbatch:sample"] == "NA12878 ü"
    # moto does not echo propagateTags or resource overrides in DescribeJobs: check the request itself.
    request = sent[stats["jobName"]]
    assert request["propagateTags"] is True
    reqs = {r["type"]: r["value"] for r in request["containerOverrides"]["resourceRequirements"]}
    assert reqs == {"VCPU": "1", "MEMORY": "2048"}
    # ... and the worker learns them (worker/cpus.py: the engine's cores for one input)
    job_env = {e["name"]: e["value"] for e in request["containerOverrides"]["environment"]}
    assert job_env["ALIGNBATCH_JOB_VCPUS"] == "1"
    assert request["timeout"]["attemptDurationSeconds"] == 2 * 3600
    assert sent[summary["jobName"]]["containerOverrides"]["resourceRequirements"][1]["value"] == "512"

    indexed = runs["incoming/indexed.bam"]
    assert [j.step for j in ctl.ledger.jobs_for_run(indexed.run_id)] == ["alignstats", "summary"]

    # The queue is empty: every message was deleted after its commit.
    attrs = env.client("sqs").get_queue_attributes(
        QueueUrl=env.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert (
        attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    )

    # moto's no-docker Batch marks jobs SUCCEEDED without running them: the reconcile loop sees the
    # completions, then fails the run because no summary row was written (never a silent success).
    ctl.reconcile()
    assert metric(ctl, "alignbatch_job_completions_total", step="alignstats", outcome="succeeded") == 2
    assert ctl.ledger.get_run(odd.run_id).state == "failed"
    assert "summary row unreadable" in (ctl.ledger.get_run(odd.run_id).reason or "")


def test_duplicates_and_test_event_create_nothing(env: AwsEnv, tmp_path: Path, data_dir: Path) -> None:
    s3, sqs = env.client("s3"), env.client("sqs")
    s3.put_object(Bucket=env.inbox_bucket, Key="incoming/a.bam", Body=(data_dir / "i_edge.bam").read_bytes())
    drain_notifications(env, 2)
    ctl, _ = make_controller(env, tmp_path)
    drain(ctl)
    jobs_before = ctl.ledger.job_counts()
    # Redeliver: the same S3 record again (at-least-once delivery), twice in one message, and a TestEvent.
    obj = s3.head_object(Bucket=env.inbox_bucket, Key="incoming/a.bam")
    record = {
        "eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "eventTime": "2026-11-25T10:00:00Z",
        "s3": {"bucket": {"name": env.inbox_bucket},
               "object": {"key": "incoming%2Fa.bam", "size": obj["ContentLength"],
                          "eTag": obj["ETag"].strip('"')}},
    }  # fmt: skip
    sqs.send_message(QueueUrl=env.queue_url, MessageBody=json.dumps({"Records": [record, record]}))
    sqs.send_message(
        QueueUrl=env.queue_url, MessageBody=json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})
    )
    sqs.send_message(
        QueueUrl=env.queue_url,
        MessageBody=json.dumps({"Type": "Notification", "Message": json.dumps({"Records": [record]})}),
    )
    drain(ctl)
    assert ctl.ledger.run_counts()["active"] + ctl.ledger.run_counts()["failed"] == 1
    assert ctl.ledger.job_counts() == jobs_before
    assert metric(ctl, "alignbatch_events_total", outcome="duplicate") == 3
    assert metric(ctl, "alignbatch_events_total", outcome="test_event") == 2
    listed = env.client("batch").list_jobs(jobQueue=env.job_queue, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert len(listed) == 3


def test_unparseable_message_is_left_for_redrive(env: AwsEnv, tmp_path: Path) -> None:
    sqs = env.client("sqs")
    drain_notifications(env, 1)
    sqs.send_message(QueueUrl=env.queue_url, MessageBody="this is not an S3 event {")
    cfg_extra = ""
    ctl, _ = make_controller(env, tmp_path, extra=cfg_extra)
    ctl.source.visibility_timeout = 1
    drain(ctl)
    assert metric(ctl, "alignbatch_events_total", outcome="malformed") >= 1
    # Not deleted: after the visibility timeout it comes back, and after maxReceiveCount it is in the DLQ.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        ctl.poll()
        dlq = sqs.get_queue_attributes(QueueUrl=env.dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
        if dlq["Attributes"]["ApproximateNumberOfMessages"] == "1":
            break
        time.sleep(0.5)
    msgs = sqs.receive_message(QueueUrl=env.dlq_url, WaitTimeSeconds=1)["Messages"]
    assert msgs[0]["Body"] == "this is not an S3 event {"
    assert ctl.ledger.run_counts()["active"] == 0


def test_restart_between_intent_and_submit_does_not_duplicate(
    env: AwsEnv, tmp_path: Path, data_dir: Path
) -> None:
    s3, batch = env.client("s3"), env.client("batch")
    s3.put_object(Bucket=env.inbox_bucket, Key="incoming/a.bam", Body=(data_dir / "i_edge.bam").read_bytes())
    drain_notifications(env, 2)
    ctl, cfg = make_controller(env, tmp_path)
    while ctl.poll().received:
        pass
    [run] = ctl.ledger.runs()
    # Crash 1: intent recorded, SubmitJob never sent. Crash 2: SubmitJob sent, job id never recorded.
    ctl.ledger.mark_intent(run.run_id, "index")
    index_job = ctl.ledger.jobs_for_run(run.run_id)[0]
    ctl.ledger.close()
    ctl2 = build_controller(cfg, metrics=Metrics(), once=True)
    assert ctl2.submit_ready() == 3  # the intent had no Batch job: submitted once
    jobs = ctl2.ledger.jobs_for_run(run.run_id)
    # Simulate crash 2 for alignstats: forget its id, put it back to INTENT; Batch has the job.
    stats = jobs[1]
    with sqlite3.connect(cfg.state.ledger_path) as db:
        db.execute(
            "UPDATE jobs SET state='INTENT', job_id=NULL WHERE run_id=? AND step='alignstats'", (run.run_id,)
        )
    ctl3 = build_controller(cfg, metrics=Metrics(), once=True)
    assert ctl3.submit_ready() == 0  # resolved by name in Batch, nothing resubmitted
    assert ctl3.ledger.jobs_for_run(run.run_id)[1].job_id == stats.job_id
    names = [
        j["jobName"] for j in batch.list_jobs(jobQueue=env.job_queue, jobStatus="SUCCEEDED")["jobSummaryList"]
    ]
    assert sorted(names) == sorted({index_job.name, stats.name, jobs[2].name})
    assert metric(ctl3, "alignbatch_job_submissions_total", step="alignstats", outcome="recovered") == 1


def test_missing_batch_job_is_resolved_by_outputs_or_lost(
    env: AwsEnv, tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = env.client("s3")
    s3.put_object(Bucket=env.inbox_bucket, Key="incoming/a.bam", Body=(data_dir / "i_edge.bam").read_bytes())
    drain_notifications(env, 2)
    monkeypatch.setenv("ALIGNBATCH_BATCH_MISSING_JOB_GRACE_SECONDS", "3600")
    ctl, cfg = make_controller(env, tmp_path)
    drain(ctl)
    [run] = ctl.ledger.runs()
    # Pretend Batch forgot the jobs (it does after ~a day): give them ids it never issued.
    with sqlite3.connect(cfg.state.ledger_path) as db:
        db.execute(
            "UPDATE jobs SET job_id = 'gone-' || step, submitted_at = ?, state = 'RUNNING' WHERE run_id=?",
            (time.time() - 600, run.run_id),
        )
    ctl.reconcile()  # absent for 10 minutes, within the configured hour: not resolved yet
    assert {j.state for j in ctl.ledger.jobs_for_run(run.run_id)} == {"RUNNING"}
    with sqlite3.connect(cfg.state.ledger_path) as db:
        db.execute("UPDATE jobs SET submitted_at = 0 WHERE run_id=?", (run.run_id,))
    # The index output exists; the others do not.
    s3.put_object(Bucket=env.results_bucket, Key="alignbatch/indexes/a.bam.bai", Body=b"x")
    ctl.reconcile()
    jobs = {j.step: j for j in ctl.ledger.jobs_for_run(run.run_id)}
    assert jobs["index"].state == "SUCCEEDED" and jobs["index"].reason == "resolved by its outputs"
    assert jobs["alignstats"].state == "LOST"
    assert ctl.ledger.get_run(run.run_id).state == "failed"
    assert metric(ctl, "alignbatch_job_completions_total", step="alignstats", outcome="lost") == 1


def test_check_and_run_as_subprocess(env: AwsEnv, tmp_path: Path, data_dir: Path) -> None:
    """`check` verifies every resource; `run --config --once` works as a real process from TOML + env."""
    from tests.support.moto import free_port

    cfg_path = tmp_path / "controller.toml"
    port = free_port()
    env.client("logs").create_log_group(logGroupName="/alignbatch/controller")
    shipping = '[logging]\ncloudwatch_group = "/alignbatch/controller"\ncloudwatch_stream = "ctl-test"\n'
    cfg_path.write_text(env.config_toml(tmp_path / "state.db", metrics_port=port, extra=shipping))
    exe = str(Path(sys.executable).parent / "alignbatch-controller")
    out = subprocess.run(
        [exe, "check", "--config", str(cfg_path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("ok") >= 6
    bad = tmp_path / "bad.toml"
    bad.write_text(env.config_toml(tmp_path / "s.db").replace('"ab-queue"', '"no-such-queue"'))
    out = subprocess.run([exe, "check", "--config", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "MISSING  job queue no-such-queue" in out.stdout

    env.client("s3").put_object(
        Bucket=env.inbox_bucket, Key="incoming/a.bam", Body=(data_dir / "i_edge.bam").read_bytes()
    )
    drain_notifications(env, 2)
    out = subprocess.run(
        [exe, "run", "--config", str(cfg_path), "--once", "--max-seconds", "60"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    assert any(x["event"] == "run.created" for x in lines)
    assert sum(1 for x in lines if x["event"] == "job.submitted") == 3
    assert "alignbatch: inbox drained." in out.stdout
    # The same JSON lines were shipped to CloudWatch Logs (flushed on exit).
    logs = env.client("logs")
    shipped = logs.get_log_events(logGroupName="/alignbatch/controller", logStreamName="ctl-test")
    assert any(json.loads(e["message"])["event"] == "job.submitted" for e in shipped["events"])


def test_visibility_extension_and_queue_gauges(env: AwsEnv, tmp_path: Path) -> None:
    from controller.sources.base import Message

    sqs = env.client("sqs")
    drain_notifications(env, 1)  # the TestEvent
    ctl, _ = make_controller(env, tmp_path)
    ctl.source.visibility_timeout = 2  # received for 2 s only...
    [msg] = ctl.source.receive(10)
    ctl._in_flight[msg.message_id] = msg
    ctl.extend_in_flight()  # ...then extended to [queue] visibility_timeout (60 s) while "in flight"
    ctl.refresh_gauges()
    assert metric(ctl, "alignbatch_queue_messages", queue="inbox", kind="in_flight") == 1
    assert metric(ctl, "alignbatch_queue_messages", queue="dlq", kind="visible") == 0
    time.sleep(2.5)
    assert "Messages" not in sqs.receive_message(QueueUrl=env.queue_url, WaitTimeSeconds=1)
    assert isinstance(msg, Message)


def test_cloudwatch_shipping_batches_lines(aws: str) -> None:
    from controller.cloudwatch import CloudWatchShipper, TeeStream

    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName="/alignbatch/controller")
    shipper = CloudWatchShipper("/alignbatch/controller", "test-stream", client=logs, flush_seconds=60)
    import io

    out = io.StringIO()
    tee = TeeStream(out, shipper)
    for i in range(25):
        tee.write(json.dumps({"event": "line", "i": i}) + "\n")
    assert shipper.flush() == 25
    got = logs.get_log_events(logGroupName="/alignbatch/controller", logStreamName="test-stream")["events"]
    assert [json.loads(e["message"])["i"] for e in got] == list(range(25))
    assert out.getvalue().count("\n") == 25


def test_refused_submission_fails_the_run_instead_of_wedging(
    env: AwsEnv, tmp_path: Path, data_dir: Path
) -> None:
    s3 = env.client("s3")
    for name in ("a", "b"):
        s3.put_object(
            Bucket=env.inbox_bucket, Key=f"incoming/{name}.bam", Body=(data_dir / "i_edge.bam").read_bytes()
        )
    drain_notifications(env, 3)
    ctl, _ = make_controller(env, tmp_path)
    ctl.executor.job_definitions["summary"] = "no-such-definition"  # Batch answers ClientException (400)
    drain(ctl)
    runs = ctl.ledger.runs()
    assert {r.state for r in runs} == {"failed"} and len(runs) == 2
    for run in runs:
        jobs = {j.step: j for j in ctl.ledger.jobs_for_run(run.run_id)}
        assert jobs["summary"].state == "FAILED" and "submission refused" in (jobs["summary"].reason or "")
        assert jobs["alignstats"].job_id  # the steps before it were submitted
    assert ctl.submit_ready() == 0  # nothing left that could wedge the loop


def test_throttled_batch_calls_are_counted_and_retried(tmp_path: Path) -> None:
    """An endpoint that always answers 429 TooManyRequestsException (as Batch does over 50 TPS): botocore
    retries, every throttled response is counted per API, and the failure is transient (not permanent)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from botocore.config import Config

    from controller.executors.aws_batch import BatchExecutor
    from controller.executors.base import ExecutorError, SubmitRequest

    seen_requests: list[str] = []

    class Throttling(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen_requests.append(self.path)
            body = json.dumps({"__type": "TooManyRequestsException", "message": "Too Many Requests"}).encode()
            self.send_response(429)
            self.send_header("x-amzn-ErrorType", "TooManyRequestsException")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Throttling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = boto3.client(
            "batch", region_name=REGION, endpoint_url=f"http://127.0.0.1:{server.server_port}",
            aws_access_key_id="x", aws_secret_access_key="x",
            config=Config(retries={"mode": "adaptive", "max_attempts": 3}),
        )  # fmt: skip
        metrics = Metrics()
        ex = BatchExecutor(
            job_queue="q", job_definitions={"index": "d"}, client=client,
            on_throttle=lambda api: metrics.throttled.labels(api=api).inc(),
        )  # fmt: skip
        with pytest.raises(ExecutorError) as err:
            ex.submit(SubmitRequest("n1", "index", ("x",), (), 1, 512, 60))
        assert not err.value.permanent and "TooManyRequestsException" in str(err.value)
        counted = metrics.registry.get_sample_value("alignbatch_throttled_calls_total", {"api": "SubmitJob"})
        assert counted == len(seen_requests) >= 2
    finally:
        server.shutdown()
