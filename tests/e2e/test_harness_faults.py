"""The fault-injection middleware on its own, seen through boto3 exactly as the product sees it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.support.faults import FaultInjector, FaultPlan, operation_of
from tests.support.harness import MotoBatch, create_batch_queue


def _env(method: str, path: str, query: str = "", **headers: str) -> dict[str, str]:
    env = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
    env.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    return env


def test_operation_names() -> None:
    auth = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{}/aws4_request, SignedHeaders=host"
    batch = auth.format("batch")
    assert operation_of(_env("POST", "/v1/submitjob", AUTHORIZATION=batch)) == "batch:submitjob"
    assert (
        operation_of(
            _env("POST", "/", X_AMZ_TARGET="AmazonSQS.ReceiveMessage", AUTHORIZATION=auth.format("sqs"))
        )
        == "sqs:receivemessage"
    )
    s3 = auth.format("s3")
    assert operation_of(_env("GET", "/b/k/x.bam", AUTHORIZATION=s3)) == "s3:getobject"
    assert operation_of(_env("PUT", "/b/k", "partNumber=1&uploadId=u", AUTHORIZATION=s3)) == "s3:uploadpart"
    assert operation_of(_env("POST", "/b/k", "uploads=", AUTHORIZATION=s3)) == "s3:createmultipartupload"
    assert operation_of(_env("GET", "/b", "list-type=2", AUTHORIZATION=s3)) == "s3:listobjectsv2"
    assert operation_of(_env("POST", "/", "Action=GetCallerIdentity", AUTHORIZATION=auth.format("sts"))) == (
        "sts:getcalleridentity"
    )


def test_throttle_and_slowdown_have_the_aws_wire_shape(mb: MotoBatch) -> None:
    queue = create_batch_queue(mb)
    mb.client("s3").create_bucket(Bucket="faulty")
    mb.set_faults(
        [
            {"api": "batch:describejobs", "kind": "throttle", "channel": "controller"},
            {"api": "s3:putobject", "kind": "slowdown", "channel": "controller"},
            {"api": "sqs:*", "kind": "error500", "channel": "controller"},
        ]
    )
    batch = mb.client("batch", "controller", retries={"mode": "standard", "total_max_attempts": 1})
    with pytest.raises(ClientError) as err:
        batch.describe_jobs(jobs=["x"])
    assert err.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    s3 = mb.client("s3", "controller", retries={"mode": "standard", "total_max_attempts": 1})
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket="faulty", Key="k", Body=b"x")
    assert err.value.response["Error"]["Code"] == "SlowDown"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    sqs = mb.client("sqs", "controller", retries={"mode": "standard", "total_max_attempts": 1})
    with pytest.raises(ClientError) as err:
        sqs.list_queues()
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    # The clean channel is never touched, and other channels only by their own rules.
    assert mb.client("batch").describe_jobs(jobs=["x"])["jobs"] == []
    assert mb.client("batch", "jobs").list_jobs(jobQueue=queue)["jobSummaryList"] == []
    assert mb.injected_by_kind() == {"throttle": 1, "slowdown": 1, "error500": 1}


def test_decisions_are_seeded_and_counted() -> None:
    plan = {
        "seed": 7,
        "rules": [
            {"api": "batch:describejobs", "kind": "throttle", "rate": 0.3},
            {"api": "s3:*", "kind": "slowdown", "rate": 0.1, "channel": "jobs"},
        ],
    }
    runs = []
    for _ in range(2):
        injector = FaultInjector()
        injector.configure(FaultPlan.from_json(plan))
        decisions = [
            injector.decide(ch, op, "")
            for ch in ("controller", "jobs")
            for op in ("batch:describejobs", "s3:getobject")
            for _ in range(200)
        ]
        runs.append([d.kind if d else None for d in decisions])
        snap = injector.snapshot()
        injected = {(r["channel"], r["kind"], r["api"]): r["count"] for r in snap["injected"]}
        assert set(injected) == {
            ("controller", "throttle", "batch:describejobs"),
            ("jobs", "throttle", "batch:describejobs"),
            ("jobs", "slowdown", "s3:getobject"),
        }
        assert 40 <= injected[("controller", "throttle", "batch:describejobs")] <= 80
    assert runs[0] == runs[1]


def test_botocore_retries_ride_through_a_fault_rate(mb: MotoBatch) -> None:
    create_batch_queue(mb)
    mb.client("s3").create_bucket(Bucket="faulty")
    mb.set_faults(
        [
            {"api": "batch:describejobs", "kind": "throttle", "rate": 0.3},
            {"api": "s3:*", "kind": "slowdown", "rate": 0.3},
        ],
        seed=3,
    )
    batch = mb.client("batch", "controller", retries={"mode": "standard", "max_attempts": 10})
    s3 = mb.client("s3", "controller", retries={"mode": "standard", "max_attempts": 10})
    for i in range(8):
        batch.describe_jobs(jobs=[f"job-{i}"])
        s3.put_object(Bucket="faulty", Key=f"k{i}", Body=b"x")
    kinds = mb.injected_by_kind()
    assert kinds["throttle"] >= 1 and kinds["slowdown"] >= 1
    assert len(mb.client("s3").list_objects_v2(Bucket="faulty")["Contents"]) == 8


def test_dropped_connections_mid_download_are_retried_and_the_bytes_are_right(
    mb: MotoBatch, tmp_path: Path
) -> None:
    clean = mb.client("s3")
    clean.create_bucket(Bucket="faulty")
    payload = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32)  # 3 MiB
    clean.put_object(Bucket="faulty", Key="dir/big.bin", Body=payload)
    mb.set_faults(
        [
            {"api": "s3:getobject", "kind": "drop", "after_bytes": 100_000, "limit": 2, "key": "dir/*"},
            {"api": "s3:headobject", "kind": "drop", "after_bytes": 0, "limit": 1},
        ]
    )
    s3 = mb.client("s3", "jobs")
    target = tmp_path / "big.bin"
    s3.download_file("faulty", "dir/big.bin", str(target))
    assert target.read_bytes() == payload
    assert mb.injected_by_kind() == {"drop": 3}
