"""The controller's AWS resources created in a moto server through the AWS APIs (queues, buckets, Batch)."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

REGION = "us-east-1"


@dataclass
class AwsEnv:
    endpoint: str
    inbox_bucket: str
    results_bucket: str
    queue_url: str
    dlq_url: str
    job_queue: str
    job_definitions: dict[str, str]

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)

    def config_toml(self, ledger: Path, *, metrics_port: int = 0, extra: str = "") -> str:
        return f"""
[aws]
region = "{REGION}"
[queue]
url = "{self.queue_url}"
dlq_url = "{self.dlq_url}"
wait_seconds = 1
visibility_timeout = 60
[storage]
inbox_bucket = "{self.inbox_bucket}"
inbox_prefix = "incoming/"
results_bucket = "{self.results_bucket}"
results_prefix = "alignbatch"
[batch]
job_queue = "{self.job_queue}"
job_definition_index = "{self.job_definitions["index"]}"
job_definition_alignstats = "{self.job_definitions["alignstats"]}"
job_definition_summary = "{self.job_definitions["summary"]}"
submit_rate_per_second = 20
reconcile_seconds = 1
[pipeline]
alignstats_args = ["-C"]
[metrics]
port = {metrics_port}
[state]
ledger_path = "{ledger}"
{extra}
"""


def moto_batch_no_docker(endpoint: str) -> None:
    req = urllib.request.Request(
        f"{endpoint}/moto-api/config",
        method="POST",
        data=json.dumps({"batch": {"use_docker": False}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


def create_aws_env(endpoint: str, *, notification: bool = True, max_receive: int = 2) -> AwsEnv:
    """Everything the controller needs, created through the AWS APIs of the moto server."""
    s3 = boto3.client("s3", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    batch = boto3.client("batch", region_name=REGION)
    inbox, results = "ab-inbox", "ab-results"
    s3.create_bucket(Bucket=inbox)
    s3.create_bucket(Bucket=results)
    dlq_url = sqs.create_queue(QueueName="ab-inbox-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName="ab-inbox-events",
        Attributes={
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)}
            ),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    if notification:
        s3.put_bucket_notification_configuration(
            Bucket=inbox,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": queue_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "incoming/"}]}},
                    }
                ]
            },
        )
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="ab-batch", Description="batch", VpcId=vpc)["GroupId"]
    role = iam.create_role(
        RoleName="ab-batch-service",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "batch.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ]
            }
        ),
    )["Role"]["Arn"]
    iam.create_instance_profile(InstanceProfileName="ab-ecs-instance")
    profile = iam.get_instance_profile(InstanceProfileName="ab-ecs-instance")["InstanceProfile"]["Arn"]
    ce = batch.create_compute_environment(
        computeEnvironmentName="ab-ce",
        type="MANAGED",
        state="ENABLED",
        computeResources={
            "type": "EC2",
            "minvCpus": 0,
            "maxvCpus": 64,
            "desiredvCpus": 0,
            "instanceTypes": ["optimal"],
            "subnets": [subnet],
            "securityGroupIds": [sg],
            "instanceRole": profile,
        },
        serviceRole=role,
    )["computeEnvironmentArn"]
    jq = batch.create_job_queue(
        jobQueueName="ab-queue",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )["jobQueueName"]
    defs = {}
    for step in ("index", "alignstats", "summary"):
        name = f"ab-{step}"
        batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties={
                "image": "alignbatch-worker:test",
                "command": ["alignbatch-worker", "--help"],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
            },
            propagateTags=True,
        )
        defs[step] = name
    moto_batch_no_docker(endpoint)
    return AwsEnv(endpoint, inbox, results, queue_url, dlq_url, jq, defs)


def drain_notifications(env: AwsEnv, expect_min: int, timeout: float = 10.0) -> None:
    """Wait until moto has delivered at least `expect_min` messages to the queue."""
    sqs = env.client("sqs")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attrs = sqs.get_queue_attributes(
            QueueUrl=env.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        if int(attrs["Attributes"]["ApproximateNumberOfMessages"]) >= expect_min:
            return
        time.sleep(0.1)
