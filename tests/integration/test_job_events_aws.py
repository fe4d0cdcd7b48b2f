"""Batch Job State Change events over real SQS (moto server; moto's Batch emits no events, so the test
sends what EventBridge would): the ledger follows them without a DescribeJobs call (#14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import load_config
from controller.daemon import build_controller
from controller.events import JobStateEvent, job_state_change_body
from controller.metrics import Metrics
from controller.states import JobState, RunState
from tests.support.aws_env import AwsEnv, create_aws_env, drain_notifications


@pytest.fixture()
def env(aws: str) -> AwsEnv:
    return create_aws_env(aws)


def _event(job_id: str, name: str, status: str, **kw: object) -> str:
    fields: dict[str, object] = dict(
        job_id=job_id, job_name=name, status=status, reason=None, exit_code=None, log_stream=None,
        started_at=None, stopped_at=None, event_time=None,
    )  # fmt: skip
    fields.update(kw)
    return job_state_change_body(JobStateEvent(**fields))  # type: ignore[arg-type]


def test_state_change_events_on_their_queue_drive_the_ledger_without_describe_jobs(
    env: AwsEnv, tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs, s3 = env.client("sqs"), env.client("s3")
    state_url = sqs.create_queue(QueueName="alignbatch-job-states")["QueueUrl"]
    monkeypatch.setenv("ALIGNBATCH_BATCH_EVENTS_ENABLED", "true")
    monkeypatch.setenv("ALIGNBATCH_BATCH_STATE_QUEUE_URL", state_url)
    s3.put_object(Bucket=env.inbox_bucket, Key="incoming/a.bam", Body=(data_dir / "i_edge.bam").read_bytes())
    drain_notifications(env, 2)
    cfg_path = tmp_path / "controller.toml"
    cfg_path.write_text(env.config_toml(tmp_path / "state.db"))
    cfg = load_config(cfg_path)
    ctl = build_controller(cfg, metrics=Metrics(), once=True)
    assert ctl.state_source is not None and ctl.reconcile_seconds == cfg.batch.events_sweep_seconds
    describes: list[object] = []
    ctl.executor.client.meta.events.register(
        "before-call.batch.DescribeJobs", lambda **kw: describes.append(1)
    )
    while ctl.poll().received:
        pass
    ctl.submit_ready()
    [run] = ctl.ledger.runs()
    jobs = {j.step: j for j in ctl.ledger.jobs_for_run(run.run_id)}
    assert all(j.job_id for j in jobs.values())
    index, stats = jobs["index"], jobs["alignstats"]
    bodies = [
        _event(index.job_id or "", index.name, "RUNNING", log_stream="idx/1"),
        _event(index.job_id or "", index.name, "SUCCEEDED", exit_code=0),
        _event(index.job_id or "", index.name, "RUNNING"),  # late: never moves it back
        _event(index.job_id or "", index.name, "SUCCEEDED", exit_code=0),  # delivered twice
        _event(stats.job_id or "", stats.name, "FAILED", exit_code=4, reason="Essential container exited"),
        _event("not-ours", "someone-else", "SUCCEEDED"),
    ]
    for body in bodies:
        sqs.send_message(QueueUrl=state_url, MessageBody=body)
    received = 0
    while n := ctl.poll_job_events():
        received += n
    assert received == len(bodies)
    jobs = {j.step: j for j in ctl.ledger.jobs_for_run(run.run_id)}
    assert jobs["index"].state == JobState.SUCCEEDED and jobs["index"].log_stream == "idx/1"
    assert (jobs["alignstats"].state, jobs["alignstats"].exit_code) == (JobState.FAILED, 4)
    run_now = ctl.ledger.get_run(run.run_id)
    assert run_now is not None and run_now.state == RunState.FAILED
    assert describes == []  # the events alone: no DescribeJobs
    attrs = sqs.get_queue_attributes(QueueUrl=state_url, AttributeNames=["All"])["Attributes"]
    assert (
        attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    )
    ctl.executor.close(wait=False)
