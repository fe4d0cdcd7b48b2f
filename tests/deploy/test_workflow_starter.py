"""The optional Step Functions layer: its starter Lambda (inline in workflow.yaml) run against moto with the
environment CloudFormation gave the deployed function, fed the inbox queue's real S3 notification. It must
start one execution per object, named by the same run id and carrying the same commands as the
controller's planner (so both orchestrators write the same results layout)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from controller.config import DEFAULT_TIERS, PipelineOptions
from controller.planner import InputObject, PlanContext, plan_run
from core.version import __version__
from tests.support.stacks import apply_inbox_notification, create_stacks

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS")


def _starter_code() -> str:
    from tests.support.deploy import CFN_DIR, load_template

    template = load_template(CFN_DIR / "workflow.yaml")
    return str(template["Resources"]["Starter"]["Properties"]["Code"]["ZipFile"])


def _load_starter(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> dict[str, Any]:
    for key, value in environment.items():
        monkeypatch.setenv(key, str(value))  # moto keeps Number parameters as int
    namespace: dict[str, Any] = {"__name__": "workflow_starter"}
    exec(compile(_starter_code(), "workflow.yaml:Starter", "exec"), namespace)
    return namespace


def test_starter_starts_one_execution_per_object_matching_the_planner(
    aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = create_stacks(boto3.client("cloudformation"))
    storage, workflow = outputs["alignbatch-storage"], outputs["alignbatch-workflow"]
    s3, sqs, sfn = boto3.client("s3"), boto3.client("sqs"), boto3.client("stepfunctions")
    function = boto3.client("lambda").get_function_configuration(FunctionName=workflow["StarterFunctionName"])
    starter = _load_starter(monkeypatch, function["Environment"]["Variables"])

    apply_inbox_notification(s3, storage)
    bucket, prefix = storage["InboxBucket"], storage["InboxPrefix"]
    key = f"{prefix}centre A/NA12878 final.bam"
    s3.put_object(Bucket=bucket, Key=key, Body=b"not really a BAM")
    messages = []
    while got := sqs.receive_message(
        QueueUrl=storage["InboxQueueUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=1
    ).get("Messages"):
        messages += got
        for m in got:
            sqs.delete_message(QueueUrl=storage["InboxQueueUrl"], ReceiptHandle=m["ReceiptHandle"])
    event = {"Records": [{"messageId": m["MessageId"], "body": m["Body"]} for m in messages]}

    # the s3:TestEvent and the object event; a duplicate delivery is absorbed by the execution name
    assert starter["handler"](event, None) == {"batchItemFailures": []}
    assert starter["handler"](event, None) == {"batchItemFailures": []}
    executions = sfn.list_executions(stateMachineArn=workflow["StateMachineArn"])["executions"]
    assert len(executions) == 1
    described = sfn.describe_execution(executionArn=executions[0]["executionArn"])
    payload = json.loads(described["input"])

    record = next(
        r
        for m in messages
        for r in json.loads(m["Body"]).get("Records", [])
        if r["eventName"].startswith("ObjectCreated")
    )
    obj = InputObject(
        bucket=bucket,
        key=key,
        size=record["s3"]["object"]["size"],
        etag=record["s3"]["object"]["eTag"],
        version_id=record["s3"]["object"].get("versionId"),
        index_present=False,
    )
    ctx = PlanContext(
        inbox_root=f"s3://{bucket}/{prefix}".rstrip("/"),
        results_root=f"s3://{storage['ResultsBucket']}/{storage['ResultsPrefix']}".rstrip("/"),
        pipeline=PipelineOptions(),
        tiers=DEFAULT_TIERS,
        pipeline_version=__version__,
    )
    plan = plan_run(obj, ctx)
    assert described["name"] == plan.run_id
    for step in ("index", "alignstats"):
        spec = plan.job(step)
        assert spec is not None
        assert payload[step]["name"] == spec.name
        assert payload[step]["command"] == list(spec.command)
    summary = plan.job("summary")
    assert summary is not None and payload["summary"]["name"] == summary.name
    # the summary's fixed part is identical; its --meta set is the subset the serverless path knows
    assert payload["summary"]["command"][:7] == list(summary.command[:7])


def test_starter_reports_a_cram_without_reference_as_a_failed_item(
    aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = {
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:alignbatch-run",
        "INBOX_PREFIX": "incoming/",
        "RESULTS_ROOT": "s3://results/alignbatch/",
        "ALIGNSTATS_ARGS": '["-C"]',
        "TARGET_BED": "",
        "REFERENCE_FASTA": "",
        "ALIGNSTATS_VCPUS": "2",
        "ALIGNSTATS_MEMORY_MIB": "7680",
    }
    starter = _load_starter(monkeypatch, environment)
    bucket = "inbox"
    body = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": "incoming/x.cram", "eTag": "e"}},
            }
        ]
    }
    result = starter["handler"]({"Records": [{"messageId": "m1", "body": json.dumps(body)}]}, None)
    # left on the queue: redelivered, then moved to the DLQ by the redrive policy - never silently dropped
    assert result == {"batchItemFailures": [{"itemIdentifier": "m1"}]}


def _starter_environment() -> dict[str, str]:
    return {
        "STATE_MACHINE_ARN": "",  # set per test
        "INBOX_PREFIX": "incoming/",
        "RESULTS_ROOT": "s3://results/alignbatch/",
        "ALIGNSTATS_ARGS": '["-C"]',
        "TARGET_BED": "",
        "REFERENCE_FASTA": "",
        "ALIGNSTATS_VCPUS": "2",
        "ALIGNSTATS_MEMORY_MIB": "7680",
    }


@pytest.mark.parametrize("companion", ["incoming/sample.bai", "incoming/sample.bam.bai", None])
def test_starter_finds_an_index_when_s3_answers_403_for_missing_keys(
    aws: str, monkeypatch: pytest.MonkeyPatch, companion: str | None
) -> None:
    """The starter role may ListBucket only under the inbox prefix, so S3 answers its HEAD of a missing
    key with 403, not 404 (moto always says 404; the proxy answers as S3 would). A BAM indexed as
    `sample.bai` is looked up as `sample.bam.bai` first: that 403 must not fail the message."""
    from tests.support.s3proxy import S3Proxy

    s3, sfn = boto3.client("s3"), boto3.client("stepfunctions")
    s3.create_bucket(Bucket="inbox")
    s3.put_object(Bucket="inbox", Key="incoming/sample.bam", Body=b"BAM")
    if companion:
        s3.put_object(Bucket="inbox", Key=companion, Body=b"BAI")
    role = boto3.client("iam").create_role(
        RoleName="sfn", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )
    machine = sfn.create_state_machine(
        name="alignbatch-run",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        roleArn=role["Role"]["Arn"],
    )["stateMachineArn"]
    record = {
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "inbox"}, "object": {"key": "incoming/sample.bam", "eTag": "e1"}},
    }
    event = {"Records": [{"messageId": "m1", "body": json.dumps({"Records": [record]})}]}
    with S3Proxy(aws, forbid_missing=True) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        starter = _load_starter(monkeypatch, {**_starter_environment(), "STATE_MACHINE_ARN": machine})
        result = starter["handler"](event, None)
    assert any(r.startswith("HEAD /inbox/incoming/sample.bam.bai 403") for r in proxy.requests) or (
        companion == "incoming/sample.bam.bai"
    ), proxy.requests
    assert result == {"batchItemFailures": []}
    (execution,) = sfn.list_executions(stateMachineArn=machine)["executions"]
    payload = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    if companion:
        assert payload["index"] is None  # found: no index job
    else:
        assert payload["index"]["command"][:3] == ["alignbatch-worker", "--", "alignbatch-index"]
