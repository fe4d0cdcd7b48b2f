"""Hostile input on the AWS path (moto SQS over HTTP): one bad message never stalls the batch it came in.

Up to 10 messages arrive in one receive; every good one must be committed and deleted, and every bad one
must end as a recorded rejection (with its reason) or a message left for the DLQ: never a poll that
raises and leaves the whole batch, good messages included, to be received again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.config import load_config
from controller.daemon import build_controller
from controller.metrics import Metrics
from tests.support.aws_env import AwsEnv, create_aws_env, drain_notifications


@pytest.fixture()
def env(aws: str) -> AwsEnv:
    env = create_aws_env(aws)
    drain_notifications(env, 1)  # the TestEvent
    return env


def s3_record(env: AwsEnv, encoded_key: str, etag: str = "e1") -> dict[str, Any]:
    """An S3 notification record; `encoded_key` as S3 sends it (form-encoded)."""
    return {
        "eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "eventTime": "2026-12-01T10:00:00Z",
        "s3": {"bucket": {"name": env.inbox_bucket},
               "object": {"key": encoded_key, "size": 10, "eTag": etag}},
    }  # fmt: skip


def eventbridge(env: AwsEnv, key: str) -> dict[str, Any]:
    """An EventBridge "Object Created" event (its key is not encoded)."""
    return {
        "source": "aws.s3", "detail-type": "Object Created", "time": "2026-12-01T10:00:00Z",
        "detail": {"bucket": {"name": env.inbox_bucket}, "object": {"key": key, "size": 10, "etag": "e2"}},
    }  # fmt: skip


def controller(env: AwsEnv, tmp_path: Path) -> Any:
    cfg_path = tmp_path / "controller.toml"
    cfg_path.write_text(env.config_toml(tmp_path / "state.db"))
    return build_controller(load_config(cfg_path), metrics=Metrics(), once=True)


def queue_counts(env: AwsEnv) -> tuple[int, int]:
    attrs = env.client("sqs").get_queue_attributes(
        QueueUrl=env.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_bad_keys_in_a_batch_affect_only_their_own_messages(env: AwsEnv, tmp_path: Path) -> None:
    sqs = env.client("sqs")
    bodies = [
        {"Records": [s3_record(env, "incoming/good-1.bam")]},
        {"Records": [s3_record(env, "incoming/new%0Aline.bam")]},  # S3 allows control characters
        {"Records": [s3_record(env, "incoming/tab%09here.bam")]},
        # A lone surrogate is not UTF-8, so no S3 key: a sender's bug or a forged message.
        eventbridge(env, "incoming/\ud800.bam"),
        {"Records": [s3_record(env, "incoming/good-2.bam")]},
        {"Records": [s3_record(env, "incoming/nul%00byte.bam")]},
    ]
    for body in bodies:
        sqs.send_message(QueueUrl=env.queue_url, MessageBody=json.dumps(body))
    ctl = controller(env, tmp_path)
    ctl.source.visibility_timeout = 30

    result = ctl.poll()  # today: raises UnicodeEncodeError, nothing of the batch is deleted

    assert result.received == len(bodies) + 1  # and the TestEvent
    assert (result.acked, result.left) == (len(bodies), 1)
    runs = {r.key: r for r in ctl.ledger.runs()}
    assert {runs["incoming/good-1.bam"].state, runs["incoming/good-2.bam"].state} == {"active"}
    for key in ("incoming/new\nline.bam", "incoming/tab\there.bam", "incoming/nul\x00byte.bam"):
        assert runs[key].state == "rejected"
        assert "control character" in (runs[key].reason or "")
        assert ctl.ledger.jobs_for_run(runs[key].run_id) == []
    assert len(runs) == 5
    # Only the message that is no S3 event at all stays (in flight, then redriven to the DLQ).
    assert queue_counts(env) == (0, 1)
    assert ctl.metrics.registry.get_sample_value("alignbatch_events_total", {"outcome": "malformed"}) == 1
