"""All layers created in the moto server's CloudFormation, in dependency order with their exports; the
resources the controller needs exist; the controller is configured from the stack outputs alone."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.deploy import DEPLOY, ROOT, find_tool
from tests.support.moto import FAKE_ENV, reset_moto
from tests.support.stacks import (
    BATCH_OUTPUTS,
    LAYERS,
    STORAGE_OUTPUTS,
    Layer,
    apply_inbox_notification,
    create_stack,
    create_stacks,
)

# moto warns once per resource type its CloudFormation skips (bucket/queue policies, SG egress rules).
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS")


@pytest.fixture(scope="module")
def outputs(moto_endpoint: str) -> Iterator[dict[str, dict[str, str]]]:
    """The stacks, created once for this module (none of its tests changes them), on a freshly reset moto,
    with the same environment the `aws` fixture gives a test."""
    with pytest.MonkeyPatch.context() as mp:
        reset_moto(moto_endpoint)
        for key, value in FAKE_ENV.items():
            mp.setenv(key, value)
        mp.setenv("AWS_ENDPOINT_URL", moto_endpoint)
        for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            mp.delenv(key, raising=False)
        yield create_stacks(boto3.client("cloudformation"))


def test_all_layers_create_with_contract_outputs_and_exports(outputs: dict[str, dict[str, str]]) -> None:
    assert list(outputs) == [layer.stack for layer in LAYERS]
    assert set(outputs["alignbatch-storage"]) >= STORAGE_OUTPUTS
    assert set(outputs["alignbatch-batch"]) >= BATCH_OUTPUTS
    exports = {e["Name"]: e["Value"] for e in boto3.client("cloudformation").list_exports()["Exports"]}
    for stack, values in outputs.items():
        for key, value in values.items():
            if key != "EgressMode":  # informational, not exported
                assert exports[f"{stack}-{key}"] == value
    # Job definitions are handed out by name, never pinned to a revision.
    batch = outputs["alignbatch-batch"]
    for key in ("JobDefinitionIndex", "JobDefinitionAlignstats", "JobDefinitionSummary"):
        assert ":" not in batch[key] and batch[key].startswith("alignbatch-")


def test_resources_the_controller_needs_exist(outputs: dict[str, dict[str, str]]) -> None:
    storage, batch_out = outputs["alignbatch-storage"], outputs["alignbatch-batch"]
    s3, sqs, batch = boto3.client("s3"), boto3.client("sqs"), boto3.client("batch")
    iam, ecr, logs = boto3.client("iam"), boto3.client("ecr"), boto3.client("logs")

    for key in ("InboxBucket", "ResultsBucket", "ReferenceBucket"):
        s3.head_bucket(Bucket=storage[key])
    attrs = sqs.get_queue_attributes(QueueUrl=storage["InboxQueueUrl"], AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=storage["DeadLetterQueueUrl"], AttributeNames=["QueueArn"])
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq["Attributes"]["QueueArn"]
    assert int(redrive["maxReceiveCount"]) == 5
    assert attrs["QueueArn"] == storage["InboxQueueArn"]
    assert attrs["VisibilityTimeout"] == "900" and attrs["ReceiveMessageWaitTimeSeconds"] == "20"
    assert attrs["KmsMasterKeyId"] == storage["KmsKeyArn"]

    queues = batch.describe_job_queues(jobQueues=[batch_out["JobQueue"], batch_out["JobQueueOnDemand"]])
    assert {q["jobQueueName"]: q["state"] for q in queues["jobQueues"]} == {
        "alignbatch": "ENABLED",
        "alignbatch-ondemand": "ENABLED",
    }
    image = f"{storage['EcrRepositoryUri']}:0.1.0"
    for key in ("JobDefinitionIndex", "JobDefinitionAlignstats", "JobDefinitionSummary"):
        (jd,) = batch.describe_job_definitions(jobDefinitionName=batch_out[key], status="ACTIVE")[
            "jobDefinitions"
        ]
        container = jd["containerProperties"]
        assert container["image"] == image
        assert container["jobRoleArn"] == batch_out["JobRoleArn"]
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert env["ALIGNBATCH_SSE_KMS_KEY_ID"] == storage["KmsKeyArn"]
        assert env["ALIGNBATCH_SCRATCH"] == "/scratch"
        assert container["logConfiguration"]["options"]["awslogs-group"] == storage["JobLogGroup"]
        # moto lower-cases the action; AWS returns it as registered
        actions = [(r.get("onExitCode"), r["action"].upper()) for r in jd["retryStrategy"]["evaluateOnExit"]]
        assert ("75", "RETRY") in actions and ("73", "RETRY") in actions and ("*", "EXIT") in actions

    for arn in (batch_out["JobRoleArn"], outputs["alignbatch-controller"]["ControllerRoleArn"]):
        iam.get_role(RoleName=arn.rsplit("/", 1)[1])
    # the job role's grants resolve (through the imports) to exactly the three prefixes
    policy = iam.get_role_policy(
        RoleName=batch_out["JobRoleArn"].rsplit("/", 1)[1], PolicyName="alignbatch-worker-data"
    )["PolicyDocument"]
    if isinstance(policy, str):  # moto keeps a template's inline policy as the repr of a dict
        policy = ast.literal_eval(policy)
    grants = {st["Sid"]: st["Resource"] for st in policy["Statement"]}
    assert grants["ReadInboxObjects"] == [f"arn:aws:s3:::{storage['InboxBucket']}/incoming/*"]
    assert grants["ReadReferenceObjects"] == [f"arn:aws:s3:::{storage['ReferenceBucket']}/references/*"]
    assert grants["ReadAndWriteResultObjects"] == [f"arn:aws:s3:::{storage['ResultsBucket']}/alignbatch/*"]
    repo_name = storage["EcrRepositoryUri"].split("/", 1)[1]
    (repo,) = ecr.describe_repositories(repositoryNames=[repo_name])["repositories"]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    # (moto drops a template's ImageScanningConfiguration; test_templates checks ScanOnPush statically)
    groups = {
        g["logGroupName"]: g for g in logs.describe_log_groups(logGroupNamePrefix="/alignbatch/")["logGroups"]
    }
    assert groups[storage["JobLogGroup"]]["retentionInDays"] == 90
    assert storage["ControllerLogGroup"] in groups
    boto3.client("kms").describe_key(KeyId=storage["KmsKeyArn"])


def test_network_without_nat_uses_interface_endpoints(outputs: dict[str, dict[str, str]]) -> None:
    cf, ec2 = boto3.client("cloudformation"), boto3.client("ec2")
    out = create_stack(cf, Layer("alignbatch-net-endpoints", "network.yaml", {"EgressMode": "Endpoints"}))
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [out["VpcId"]]}])
    services = {e["ServiceName"].rsplit(".", 1)[-1] for e in endpoints["VpcEndpoints"]}
    assert {
        "s3",
        "api",
        "dkr",
        "ecs",
        "ecs-agent",
        "ecs-telemetry",
        "logs",
        "sqs",
        "batch",
        "sts",
    } <= services
    assert not ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [out["VpcId"]]}])[
        "NatGateways"
    ]


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    records = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        if not got.get("Messages"):
            return records
        for message in got["Messages"]:
            body = json.loads(message["Body"])
            records.extend(body.get("Records", [{"test_event": body.get("Event")}]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_inbox_notification_applied_through_the_api_reaches_the_queue(
    outputs: dict[str, dict[str, str]],
) -> None:
    # moto ignores a bucket's NotificationConfiguration in templates (EMULATION.md): apply the one
    # storage.yaml declares through the S3 API, as an operator's post-deploy step would not need to.
    storage = outputs["alignbatch-storage"]
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    apply_inbox_notification(s3, storage)
    bucket, prefix = storage["InboxBucket"], storage["InboxPrefix"]
    for key in (
        f"{prefix}centre A/sample 1.bam",
        f"{prefix}x.cram",
        f"{prefix}readme.txt",
        "elsewhere/y.bam",
    ):
        s3.put_object(Bucket=bucket, Key=key, Body=b"data")
    records = _drain(sqs, storage["InboxQueueUrl"])
    keys = sorted(urllib.parse.unquote_plus(r["s3"]["object"]["key"]) for r in records if "s3" in r)
    assert keys == [f"{prefix}centre A/sample 1.bam", f"{prefix}x.cram"]


def _render(tmp_path: Path, *extra: str) -> Path:
    proc = subprocess.run(
        [sys.executable, str(DEPLOY / "render_config.py"), "--stack-prefix", "alignbatch", *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "controller.toml"
    path.write_text(proc.stdout)
    return path


def test_controller_config_rendered_from_outputs_alone(
    outputs: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    from controller.config import load_config, validate_aws

    cfg = load_config(_render(tmp_path), env={})
    storage, batch = outputs["alignbatch-storage"], outputs["alignbatch-batch"]
    assert validate_aws(cfg) == []
    assert cfg.queue.url == storage["InboxQueueUrl"] and cfg.queue.dlq_url == storage["DeadLetterQueueUrl"]
    assert cfg.storage.inbox_bucket == storage["InboxBucket"]
    assert cfg.storage.kms_key_id == storage["KmsKeyArn"]
    assert cfg.batch.job_queue == batch["JobQueue"]
    assert cfg.batch.job_definition_alignstats == batch["JobDefinitionAlignstats"]
    assert cfg.metrics.address == "127.0.0.1"
    assert cfg.results_root == f"s3://{storage['ResultsBucket']}/alignbatch"
    assert cfg.logging.job_log_group == storage["JobLogGroup"]  # the QC report's links to job logs
    # the queues schedule by fair share (every SubmitJob needs a shareIdentifier), with Spot fallback
    assert cfg.fair_share.enabled and cfg.fair_share.scheduling_policy_arn == batch["SchedulingPolicyArn"]
    assert cfg.batch.queues == (batch["JobQueue"], batch["JobQueueOnDemand"])


def test_rendered_config_follows_job_states_by_events_from_the_controller_stack(
    outputs: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    from controller.config import load_config, validate_aws

    assert not load_config(_render(tmp_path), env={}).batch.events_enabled  # no queue given: polling only
    queue = outputs["alignbatch-controller"]["JobStateQueueUrl"]
    cfg = load_config(_render(tmp_path, "--state-queue-url", queue), env={})
    assert cfg.batch.events_enabled and cfg.batch.state_queue_url == queue
    assert validate_aws(cfg) == []


def test_controller_check_accepts_the_rendered_config(
    outputs: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    controller = find_tool("alignbatch-controller")
    assert controller, "alignbatch-controller console script is not installed (pip install -e .)"
    config = _render(tmp_path)
    proc = subprocess.run(
        [controller, "check", "--config", str(config)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines and all(line.startswith("ok") for line in lines), proc.stdout
    assert any("job queue alignbatch" in line for line in lines)


def test_render_config_names_a_missing_stack(outputs: dict[str, dict[str, str]]) -> None:
    proc = subprocess.run(
        [sys.executable, str(DEPLOY / "render_config.py"), "--stack-prefix", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 66
    assert proc.stderr.strip().count("\n") == 0 and "'nope-storage'" in proc.stderr


def test_render_config_without_credentials_is_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    proc = subprocess.run(
        [sys.executable, str(DEPLOY / "render_config.py"), "--region", "us-east-1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 75
    assert proc.stderr.strip().count("\n") == 0 and "NoCredentialsError" in proc.stderr
