"""Create the deploy/cloudformation stacks in moto's CloudFormation, the way an operator deploys them.

Used by the deploy tests and reusable by the end-to-end tests:

    outputs = create_stacks(boto3.client("cloudformation"))
    apply_inbox_notification(boto3.client("s3"), outputs["alignbatch-storage"])

Moto quirks handled here, each one a difference from AWS (see ../shared/EMULATION.md):
- a bucket's NotificationConfiguration in a template is ignored, so `apply_inbox_notification` puts the
  configuration the template declares through the S3 API;
- a CommaDelimitedList parameter's *default* is not split, so the Batch stack gets InstanceTypes passed;
- a compute environment without ServiceRole (AWS then uses the Batch service-linked role) is refused, so
  the Batch stack is given moto's AWSServiceRoleForBatch explicitly;
- a KMS key created from a template keeps its KeyPolicy as a dict, and every later DescribeKey answers 500,
  so `create_stacks` re-puts the same policy (resolved from storage.yaml) as the JSON string AWS would hold.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# COMMON §4: the e2e tests and the controller's config renderer depend on these names.
STORAGE_OUTPUTS = {
    "InboxBucket",
    "ResultsBucket",
    "ReferenceBucket",
    "InboxQueueUrl",
    "InboxQueueArn",
    "DeadLetterQueueUrl",
    "KmsKeyArn",
    "EcrRepositoryUri",
    "JobLogGroup",
    "ControllerLogGroup",
}
BATCH_OUTPUTS = {
    "JobQueue",
    "JobQueueOnDemand",
    "JobDefinitionIndex",
    "JobDefinitionAlignstats",
    "JobDefinitionSummary",
    "JobRoleArn",
}


ROOT = Path(__file__).resolve().parents[2]
CFN_DIR = ROOT / "deploy" / "cloudformation"


@dataclass(frozen=True)
class Layer:
    stack: str
    template: str
    parameters: Mapping[str, str]


# Dependency order: each layer imports only from layers above it.
LAYERS: tuple[Layer, ...] = (
    Layer("alignbatch-network", "network.yaml", {}),
    Layer("alignbatch-storage", "storage.yaml", {}),
    Layer("alignbatch-batch", "batch.yaml", {"InstanceTypes": "m6i,m6a,r6i,r6a,c6i"}),
    Layer("alignbatch-controller", "controller.yaml", {}),
    Layer("alignbatch-workflow", "workflow.yaml", {}),
)


class StackFailed(RuntimeError):
    pass


def create_stack(cf: Any, layer: Layer, *, timeout: float = 60.0) -> dict[str, str]:
    """Create one stack, wait for CREATE_COMPLETE, return its outputs."""
    cf.create_stack(
        StackName=layer.stack,
        TemplateBody=(CFN_DIR / layer.template).read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in layer.parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )
    deadline = time.monotonic() + timeout
    while True:
        stack = cf.describe_stacks(StackName=layer.stack)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if not status.endswith("IN_PROGRESS") or time.monotonic() > deadline:
            events = cf.describe_stack_events(StackName=layer.stack)["StackEvents"][:5]
            reasons = "; ".join(
                f"{e.get('LogicalResourceId')}: {e.get('ResourceStatusReason')}" for e in events
            )
            raise StackFailed(f"{layer.stack}: {status} ({reasons})")
        time.sleep(0.2)


def create_stacks(cf: Any, layers: Sequence[Layer] = LAYERS) -> dict[str, dict[str, str]]:
    """Create every layer in dependency order; stack name -> outputs."""
    import boto3

    outputs = {}
    for layer in layers:
        if layer.template == "batch.yaml" and "BatchServiceRoleArn" not in layer.parameters:
            layer = Layer(layer.stack, layer.template, {**layer.parameters, **batch_service_role()})
        outputs[layer.stack] = create_stack(cf, layer)
        if layer.template == "storage.yaml":
            repair_moto_key_policy(boto3.client("kms"), boto3.client("sts"), outputs[layer.stack])
    return outputs


def batch_service_role() -> dict[str, str]:
    """AWS creates the AWSServiceRoleForBatch service-linked role when a compute environment names no
    service role; moto requires a role that exists, so create the same service-linked role in moto and
    name it (the template accepts exactly that role)."""
    import boto3

    return {"BatchServiceRoleArn": batch_service_role_arn(boto3.client("iam"))}


def batch_service_role_arn(iam: Any) -> str:
    roles = iam.list_roles(PathPrefix="/aws-service-role/batch.amazonaws.com/")["Roles"]
    if roles:  # moto may already hold it (spelt AWSServiceRoleForbatch)
        return str(roles[0]["Arn"])
    return str(iam.create_service_linked_role(AWSServiceName="batch.amazonaws.com")["Role"]["Arn"])


def _resolve(node: Any, values: Mapping[str, str]) -> Any:
    """Just enough of CloudFormation's Sub/Ref to resolve the key policy's pseudo parameters."""
    if isinstance(node, Mapping):
        if set(node) == {"Ref"}:
            return values[str(node["Ref"])]
        if set(node) == {"Fn::Sub"}:
            text = str(node["Fn::Sub"])
            for name, value in values.items():
                text = text.replace("${" + name + "}", value)
            return text
        return {str(k): _resolve(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, values) for v in node]
    return str(node) if isinstance(node, str) else node


def repair_moto_key_policy(kms: Any, sts: Any, storage_outputs: Mapping[str, str]) -> None:
    """Moto stores a template's KeyPolicy as a dict and then fails on it: put the same policy back as JSON."""
    import json

    from cfnlint.decode import cfn_yaml

    template = cfn_yaml.load(str(CFN_DIR / "storage.yaml"))
    region = storage_outputs["KmsKeyArn"].split(":")[3]
    values = {
        "AWS::Partition": "aws",
        "AWS::AccountId": sts.get_caller_identity()["Account"],
        "AWS::Region": region,
    }
    policy = _resolve(template["Resources"]["Key"]["Properties"]["KeyPolicy"], values)
    kms.put_key_policy(KeyId=storage_outputs["KmsKeyArn"], PolicyName="default", Policy=json.dumps(policy))


def inbox_notification_configuration(storage_outputs: Mapping[str, str]) -> dict[str, Any]:
    """The inbox NotificationConfiguration as storage.yaml declares it, resolved with the outputs."""
    from cfnlint.decode import cfn_yaml

    template = cfn_yaml.load(str(CFN_DIR / "storage.yaml"))
    declared = template["Resources"]["InboxBucket"]["Properties"]["NotificationConfiguration"]
    configs = []
    for entry in declared["QueueConfigurations"]:
        rules = []
        for rule in entry["Filter"]["S3Key"]["Rules"]:
            value = rule["Value"]
            if isinstance(value, Mapping):  # {"Ref": "InboxPrefix"}
                assert value == {"Ref": "InboxPrefix"}, value
                value = storage_outputs["InboxPrefix"]
            rules.append({"Name": str(rule["Name"]), "Value": str(value)})
        configs.append(
            {
                "QueueArn": storage_outputs["InboxQueueArn"],
                "Events": [str(entry["Event"])],
                "Filter": {"Key": {"FilterRules": rules}},
            }
        )
    return {"QueueConfigurations": configs}


def apply_inbox_notification(s3: Any, storage_outputs: Mapping[str, str]) -> None:
    """Moto ignores NotificationConfiguration in templates: apply the declared one through the API."""
    s3.put_bucket_notification_configuration(
        Bucket=storage_outputs["InboxBucket"],
        NotificationConfiguration=inbox_notification_configuration(storage_outputs),
    )
