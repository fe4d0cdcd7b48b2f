"""The benchmark's moto SQS shim (benchmarks/moto_fast_sqs.py) must change moto's speed, not its answers:
the same SQS conversation gets the same replies from a shimmed server and from plain moto."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.moto import FAKE_ENV, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def shimmed_moto() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "moto_fast_sqs.py"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def conversation(endpoint: str, suffix: str) -> list[Any]:
    """An SQS session touching everything the shim changes; returns the id-free replies."""
    sqs = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=FAKE_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    out: list[Any] = []
    counts = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    dlq = sqs.create_queue(QueueName=f"shim-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    q = sqs.create_queue(
        QueueName=f"shim-q-{suffix}",
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
        },
    )["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["All"])["Attributes"]
    out.append(sorted(k for k in attrs if k not in ("CreatedTimestamp", "LastModifiedTimestamp")))
    out.append(
        {
            k: v
            for k, v in attrs.items()
            if k not in ("CreatedTimestamp", "LastModifiedTimestamp", "QueueArn", "RedrivePolicy")
        }
    )
    for start in range(0, 25, 10):
        sqs.send_message_batch(
            QueueUrl=q,
            Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, min(25, start + 10))],
        )
    out.append(sqs.get_queue_attributes(QueueUrl=q, AttributeNames=counts)["Attributes"])
    got = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"])[
        "Messages"
    ]
    out.append(sorted(m["Body"] for m in got))
    out.append(sorted(m["Attributes"]["ApproximateReceiveCount"] for m in got))
    out.append(sqs.get_queue_attributes(QueueUrl=q, AttributeNames=counts)["Attributes"])
    # Delete 5 of them plus one made-up handle; delete one twice.
    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got[:5])]
    entries.append({"Id": "bad", "ReceiptHandle": "not-a-handle"})
    resp = sqs.delete_message_batch(QueueUrl=q, Entries=entries)
    out.append(
        (
            sorted(s["Id"] for s in resp.get("Successful", [])),
            [(f["Id"], f["Code"]) for f in resp.get("Failed", [])],
        )
    )
    sqs.delete_message(QueueUrl=q, ReceiptHandle=got[0]["ReceiptHandle"])  # again: accepted
    out.append(sqs.get_queue_attributes(QueueUrl=q, AttributeNames=counts)["Attributes"])
    # Put the other 5 back, receive everything, let each message reach maxReceiveCount.
    sqs.change_message_visibility_batch(
        QueueUrl=q,
        Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(got[5:])
        ],
    )
    out.append(sqs.get_queue_attributes(QueueUrl=q, AttributeNames=counts)["Attributes"])
    handles = []
    for _ in range(3):
        batch = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        )
        handles += [m["ReceiptHandle"] for m in batch]
    out.append(len(handles))
    # Third receive: moto moves messages received maxReceiveCount times to the DLQ.
    moved = []
    for _ in range(4):
        moved += sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        )
    out.append(len(moved))
    out.append(sqs.get_queue_attributes(QueueUrl=q, AttributeNames=counts)["Attributes"])
    out.append(sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=counts)["Attributes"])
    try:
        sqs.delete_message(QueueUrl=q, ReceiptHandle=handles[0])  # its message now sits in the DLQ
        out.append("deleted")
    except ClientError as exc:
        out.append(exc.response["Error"]["Code"])
    return out


def test_shimmed_moto_answers_like_moto(moto_endpoint: str, shimmed_moto: str) -> None:
    assert conversation(shimmed_moto, "a") == conversation(moto_endpoint, "b")
