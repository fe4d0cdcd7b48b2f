"""Least privilege (issue #15): every IAM action a role holds is one the code calls, or one listed here with
the reason nobody's Python calls it; conditions and resource scopes the linters do not check.

The code scan is static: an AST walk over each role's code for boto3 client method calls
(`client.submit_job(`, `self._call("submit_job", ...)`, `get_paginator("list_objects_v2")`), calls of
`core.objectstore.S3ObjectStore` methods on a store (mapped through that class's own client calls), and
s3transfer's `TransferManager.upload/download`. Each operation maps to its IAM action by the table below.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.deploy import ROOT

# boto3 operation (snake case) -> IAM actions it is authorised by.
OPERATION_ACTIONS: dict[str, set[str]] = {
    # S3 (HeadObject is authorised by s3:GetObject; ListObjectsV2 by s3:ListBucket)
    "head_object": {"s3:GetObject"},
    "get_object": {"s3:GetObject"},
    "put_object": {"s3:PutObject"},
    "delete_object": {"s3:DeleteObject"},
    "list_objects_v2": {"s3:ListBucket"},
    "list_objects": {"s3:ListBucket"},
    "head_bucket": {"s3:ListBucket"},
    # SQS (the batch forms are authorised by the single-message actions)
    "receive_message": {"sqs:ReceiveMessage"},
    "delete_message": {"sqs:DeleteMessage"},
    "delete_message_batch": {"sqs:DeleteMessage"},
    "change_message_visibility": {"sqs:ChangeMessageVisibility"},
    "change_message_visibility_batch": {"sqs:ChangeMessageVisibility"},
    "get_queue_attributes": {"sqs:GetQueueAttributes"},
    "get_queue_url": {"sqs:GetQueueUrl"},
    "send_message": {"sqs:SendMessage"},
    # Batch
    "submit_job": {"batch:SubmitJob"},
    "describe_jobs": {"batch:DescribeJobs"},
    "list_jobs": {"batch:ListJobs"},
    "terminate_job": {"batch:TerminateJob"},
    "cancel_job": {"batch:CancelJob"},
    "describe_job_queues": {"batch:DescribeJobQueues"},
    "describe_job_definitions": {"batch:DescribeJobDefinitions"},
    "describe_compute_environments": {"batch:DescribeComputeEnvironments"},
    "describe_scheduling_policies": {"batch:DescribeSchedulingPolicies"},
    "update_scheduling_policy": {"batch:UpdateSchedulingPolicy"},
    "tag_resource": {"batch:TagResource"},
    # KMS, CloudWatch Logs, CloudWatch, CloudFormation, Step Functions, EC2
    "describe_key": {"kms:DescribeKey"},
    "create_log_stream": {"logs:CreateLogStream"},
    "put_log_events": {"logs:PutLogEvents"},
    "describe_log_groups": {"logs:DescribeLogGroups"},
    "describe_log_streams": {"logs:DescribeLogStreams"},
    "put_metric_data": {"cloudwatch:PutMetricData"},
    "describe_stacks": {"cloudformation:DescribeStacks"},
    "signal_resource": {"cloudformation:SignalResource"},
    "start_execution": {"states:StartExecution"},
    "describe_tags": {"ec2:DescribeTags"},
}

# s3transfer's TransferManager: download = HeadObject + (ranged) GetObject; upload = PutObject, or
# CreateMultipartUpload/UploadPart/CompleteMultipartUpload (all s3:PutObject) and AbortMultipartUpload
# when an upload fails or is cancelled.
S3TRANSFER_ACTIONS = {
    "download": {"s3:GetObject"},
    "upload": {"s3:PutObject", "s3:AbortMultipartUpload"},
}

STORE_METHODS = {"head", "list", "read_bytes", "read_range", "write_bytes", "delete"}

# Actions no Python in the repository calls, each with the reason the role still needs it.
EXPLICIT: dict[str, dict[str, str]] = {
    "ControllerRole": {
        "batch:TagResource": "SubmitJob with tags (the planner's alignbatch:* keys) is tag-on-create",
        "kms:Decrypt": "SSE-KMS objects read and SQS messages received (through S3 and SQS: kms:ViaService)",
        "kms:GenerateDataKey": "SSE-KMS objects written by the controller (results table), through S3",
        "cloudformation:SignalResource": "cfn-signal in the user data (CreationPolicy)",
        "cloudwatch:PutMetricData": "the CloudWatch agent's host metrics (deploy/cloudwatch)",
        "logs:CreateLogStream": "the CloudWatch agent's Prometheus-as-EMF stream",
        "logs:PutLogEvents": "the CloudWatch agent's Prometheus-as-EMF stream",
        "s3:GetObject": "the bootstrap's `aws s3 cp` of the release archive and the wheelhouse",
    },
    "JobRole": {
        "s3:GetObjectVersion": "ranged and streamed GETs pin the version the controller saw (VersionId)",
        "s3:ListBucket": "a HEAD of a missing key answers 404 only with ListBucket (else 403)",
        "kms:Decrypt": "SSE-KMS inputs and references, through S3",
        "kms:GenerateDataKey": "SSE-KMS results, through S3",
    },
    "StarterRole": {
        "sqs:ReceiveMessage": "the SQS event source mapping polls with the function's role",
        "sqs:DeleteMessage": "the SQS event source mapping deletes processed messages",
        "sqs:ChangeMessageVisibility": "the SQS event source mapping returns failed items",
        "sqs:GetQueueAttributes": "the SQS event source mapping reads the queue's attributes",
        "kms:Decrypt": "the inbox queue is SSE-KMS encrypted (through SQS)",
        "s3:ListBucket": "a HEAD of a missing companion index answers 404 only with ListBucket (else 403)",
        "logs:CreateLogStream": "the Lambda runtime writes the function's logs",
        "logs:PutLogEvents": "the Lambda runtime writes the function's logs",
    },
}


# -- the code scan -----------------------------------------------------------------------------------------
def _calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _first_str(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def _client_operations(tree: ast.AST) -> set[str]:
    ops: set[str] = set()
    for call in _calls(tree):
        func = call.func
        if not isinstance(func, ast.Attribute):
            if isinstance(func, ast.Name) and func.id == "getattr":
                continue
            continue
        if func.attr in OPERATION_ACTIONS:
            ops.add(func.attr)
        elif func.attr in ("_call", "get_paginator") and (name := _first_str(call)):
            ops.add(name)
    return ops


def _store_method_operations() -> dict[str, set[str]]:
    """S3ObjectStore method -> the client operations it makes."""
    tree = ast.parse((ROOT / "core" / "objectstore.py").read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "S3ObjectStore"]
    return {
        fn.name: _client_operations(fn)
        for fn in cls.body
        if isinstance(fn, ast.FunctionDef) and fn.name in STORE_METHODS
    }


def actions_called(sources: Iterable[str]) -> set[str]:
    store_ops = _store_method_operations()
    actions: set[str] = set()
    for source in sources:
        tree = ast.parse(source)
        for op in _client_operations(tree):
            actions |= OPERATION_ACTIONS.get(op, {f"unmapped:{op}"})
        for call in _calls(tree):
            func = call.func
            if not isinstance(func, ast.Attribute):
                continue
            receiver = ast.unparse(func.value)
            if func.attr in STORE_METHODS and "store" in receiver.lower():
                for op in store_ops[func.attr]:
                    actions |= OPERATION_ACTIONS[op]
            if func.attr in S3TRANSFER_ACTIONS and receiver == "mgr":
                actions |= S3TRANSFER_ACTIONS[func.attr]
    return actions


def _python_files(*roots: str) -> list[str]:
    out = []
    for root in roots:
        path = ROOT / root
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        out += [f.read_text() for f in files]
    return out


def role_code(templates: Mapping[str, Any], role: str) -> list[str]:
    if role == "ControllerRole":
        return _python_files("controller", "deploy/render_config.py")
    if role == "JobRole":
        return _python_files("worker")
    if role == "StarterRole":
        return [str(templates["workflow.yaml"]["Resources"]["Starter"]["Properties"]["Code"]["ZipFile"])]
    raise KeyError(role)


ROLES = {"ControllerRole": "controller.yaml", "JobRole": "batch.yaml", "StarterRole": "workflow.yaml"}


# -- template helpers --------------------------------------------------------------------------------------
def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def statements(resource: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [st for p in resource["Properties"].get("Policies", []) for st in p["PolicyDocument"]["Statement"]]


def policy_actions(resource: Mapping[str, Any]) -> set[str]:
    return {str(a) for st in statements(resource) for a in _as_list(st["Action"])}


def _roles(templates: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for name, template in templates.items():
        for logical_id, res in template["Resources"].items():
            if res["Type"] == "AWS::IAM::Role":
                yield name, logical_id, res


# -- tests -------------------------------------------------------------------------------------------------
def test_the_scan_sees_the_calls_it_must() -> None:
    """Guard the scanner itself: known calls in known places are found."""
    controller = actions_called(_python_files("controller", "deploy/render_config.py"))
    assert {
        "batch:SubmitJob",
        "batch:TerminateJob",
        "sqs:ReceiveMessage",
        "s3:ListBucket",
        "s3:PutObject",
        "cloudformation:DescribeStacks",
        "kms:DescribeKey",
    } <= controller
    worker = actions_called(_python_files("worker"))
    assert {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"} <= worker
    assert not {a for a in controller | worker if a.startswith("unmapped:")}


@pytest.mark.parametrize(
    "role",
    ["ControllerRole", "JobRole", "StarterRole"],
)
def test_role_actions_are_exactly_what_the_code_calls(templates: Mapping[str, Any], role: str) -> None:
    resource = templates[ROLES[role]]["Resources"][role]
    held = policy_actions(resource)
    needed = actions_called(role_code(templates, role)) | set(EXPLICIT[role])
    assert not {a for a in needed if a.startswith("unmapped:")}
    unused = held - needed
    missing = needed - held
    assert not unused, f"{role} holds actions no code path uses: {sorted(unused)}"
    assert not missing, f"{role} lacks actions the code calls: {sorted(missing)}"


def test_pass_role_only_with_passed_to_service(templates: Mapping[str, Any]) -> None:
    for name, logical_id, role in _roles(templates):
        for st in statements(role):
            if "iam:PassRole" in map(str, _as_list(st["Action"])):
                cond = json.dumps(st.get("Condition", {}))
                assert "iam:PassedToService" in cond, (name, logical_id)


def test_controller_stops_only_jobs_carrying_the_project_tag(templates: Mapping[str, Any]) -> None:
    role = templates["controller.yaml"]["Resources"]["ControllerRole"]
    for st in statements(role):
        actions = set(map(str, _as_list(st["Action"])))
        if actions & {"batch:TerminateJob", "batch:CancelJob"}:
            assert actions <= {"batch:TerminateJob", "batch:CancelJob"}, actions
            # this deployment's jobs only: the exact tag value, not just any alignbatch job in the account
            cond = st.get("Condition", {})
            assert cond == {
                "StringEquals": {"aws:ResourceTag/alignbatch:deployment": {"Ref": "AWS::StackName"}}
            }
        if "batch:TagResource" in actions:
            assert actions == {"batch:TagResource"}
            cond = st.get("Condition", {})
            assert "aws:TagKeys" in json.dumps(cond), st
            assert cond["StringEquals"] == {"aws:RequestTag/alignbatch:deployment": {"Ref": "AWS::StackName"}}


def test_kms_use_only_through_the_services(templates: Mapping[str, Any]) -> None:
    """Decrypt/GenerateDataKey only through S3 or SQS: the key cannot be used directly with the creds."""
    for name, logical_id, role in _roles(templates):
        for st in statements(role):
            actions = set(map(str, _as_list(st["Action"])))
            if actions & {"kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt", "kms:ReEncrypt*"}:
                assert "kms:ViaService" in json.dumps(st.get("Condition", {})), (name, logical_id, st["Sid"])


BUCKET_PREFIX = {
    "InboxBucket": "InboxPrefix",
    "ResultsBucket": "ResultsPrefix",
    "ReferenceBucket": "ReferencePrefix",
}


def test_list_bucket_one_statement_per_bucket_with_its_own_prefix(templates: Mapping[str, Any]) -> None:
    seen = 0
    for name, logical_id, role in _roles(templates):
        for st in statements(role):
            if "s3:ListBucket" not in map(str, _as_list(st["Action"])):
                continue
            seen += 1
            resources = _as_list(st["Resource"])
            assert len(resources) == 1, (name, logical_id, st["Sid"])
            (bucket,) = [b for b in BUCKET_PREFIX if b in json.dumps(resources)]
            prefixes = json.dumps(st["Condition"]["StringLike"]["s3:prefix"])
            assert BUCKET_PREFIX[bucket] in prefixes, (name, logical_id, st["Sid"])
            others = set(BUCKET_PREFIX.values()) - {BUCKET_PREFIX[bucket]}
            assert not any(p in prefixes for p in others), (name, logical_id, st["Sid"], prefixes)
    assert seen >= 5


def _sub_text(node: Any) -> str:
    if isinstance(node, Mapping) and "Fn::Sub" in node:
        sub = node["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    return json.dumps(node)


def test_job_definition_arns_match_only_our_definitions(templates: Mapping[str, Any]) -> None:
    """`job-definition/${Name}*` also matches `${Name}-evil`: exact name, or exact name + `:<revision>`."""
    count = 0
    for name, logical_id, role in _roles(templates):
        for st in statements(role):
            for res in _as_list(st["Resource"]):
                text = _sub_text(res)
                if ":job-definition/" in text:
                    count += 1
                    tail = text.split(":job-definition/", 1)[1]
                    assert re.fullmatch(r"\$\{Name\}(:\*)?", tail), (name, logical_id, text)
    assert count >= 9


def test_kms_key_lets_s3_use_it_only_for_the_inbox_bucket(templates: Mapping[str, Any]) -> None:
    policy = templates["storage.yaml"]["Resources"]["Key"]["Properties"]["KeyPolicy"]
    (s3,) = [st for st in policy["Statement"] if st.get("Principal") == {"Service": "s3.amazonaws.com"}]
    cond = s3["Condition"]
    assert "aws:SourceAccount" in json.dumps(cond)
    source_arn = json.dumps({k: v for op in cond.values() for k, v in op.items() if k == "aws:SourceArn"})
    assert "-inbox-" in source_arn, cond


@pytest.mark.parametrize(
    "bucket",
    [
        "InboxBucket",
        "ResultsBucket",
        "ReferenceBucket",
    ],
)
def test_every_data_bucket_refuses_puts_with_another_key(templates: Mapping[str, Any], bucket: str) -> None:
    policy = templates["storage.yaml"]["Resources"][f"{bucket}Policy"]["Properties"]["PolicyDocument"]
    denies = [
        st
        for st in policy["Statement"]
        if st["Effect"] == "Deny"
        and "s3:x-amz-server-side-encryption-aws-kms-key-id" in json.dumps(st.get("Condition", {}))
    ]
    assert denies and denies[0]["Action"] == "s3:PutObject", bucket
    assert json.dumps(denies[0]["Condition"]).count("Key") >= 1


def test_s3_gateway_endpoint_reaches_only_the_buckets_we_use(templates: Mapping[str, Any]) -> None:
    endpoint = templates["network.yaml"]["Resources"]["S3GatewayEndpoint"]["Properties"]
    policy = endpoint["PolicyDocument"]
    resources = json.dumps([r for st in policy["Statement"] for r in _as_list(st["Resource"])])
    assert '"*"' not in resources and "arn:${AWS::Partition}:s3:::*" not in resources
    for bucket in ("-inbox-", "-results-", "-reference-", "starport-layer-bucket", "al2023-repos-"):
        assert bucket in resources, bucket
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow" and "*" not in _as_list(st["Action"])


@pytest.mark.parametrize("group", ["BatchSecurityGroup", "ControllerSecurityGroup"])
def test_endpoints_mode_egress_only_to_the_vpc_and_the_s3_prefix_list(
    templates: Mapping[str, Any], group: str
) -> None:
    network = templates["network.yaml"]
    egress = network["Resources"][group]["Properties"]["SecurityGroupEgress"]
    assert isinstance(egress, Mapping) and list(egress) == ["Fn::If"], egress
    condition, endpoints, nat = egress["Fn::If"]
    assert condition == "UseEndpoints"
    assert all("CidrIp" not in r or r["CidrIp"] != "0.0.0.0/0" for r in endpoints)
    assert [r["CidrIp"] for r in endpoints if "CidrIp" in r] == [{"Ref": "VpcCidr"}]
    assert [r["DestinationPrefixListId"] for r in endpoints if "DestinationPrefixListId" in r] == [
        {"Ref": "S3PrefixListId"}
    ]
    assert all(r["FromPort"] == 443 and r["ToPort"] == 443 for r in endpoints + nat)
    param = network["Parameters"]["S3PrefixListId"]
    assert "pl-" in param["AllowedPattern"] and "describe-prefix-lists" in param["Description"]
    # Endpoints mode without the prefix list id is refused before anything is created.
    assert "S3PrefixListId" in json.dumps(network["Rules"])


def _user_data(templates: Mapping[str, Any]) -> str:
    props = templates["controller.yaml"]["Resources"]["ControllerInstance"]["Properties"]
    return str(props["UserData"]["Fn::Base64"]["Fn::Sub"][0])


def test_bootstrap_checks_the_release_archive_hash_before_extracting(templates: Mapping[str, Any]) -> None:
    params = templates["controller.yaml"]["Parameters"]
    assert params["ReleaseArchiveSha256"]["AllowedPattern"] == "^([0-9a-f]{64})?$"
    script = _user_data(templates)
    check = script.index("sha256sum --check --strict")
    assert "${ReleaseArchiveSha256}" in script[:check]
    assert check < script.index('tar -xzf "$workdir/src.tar.gz"')
    # An empty parameter refuses to install instead of skipping the check.
    assert re.search(r'\[ -n "\$\{ReleaseArchiveSha256\}" \] \|\|', script)


def test_bootstrap_installs_dependencies_from_the_hashed_lock_when_shipped(
    templates: Mapping[str, Any],
) -> None:
    script = _user_data(templates)
    assert "--require-hashes -r /opt/alignbatch/src/deploy/requirements.lock" in script
    assert "--no-deps" in script  # the package itself: its dependencies came from the lock


def test_bootstrap_renders_the_config_with_the_job_state_queue(templates: Mapping[str, Any]) -> None:
    # the rule and queue are this stack's: the rendered config must use them, or reconcile polls alone
    script = _user_data(templates)
    render = script[script.index("render_config.py") : script.index("> /etc/alignbatch/controller.toml.new")]
    assert '--state-queue-url "${JobStateQueue}"' in render
    # ... and with the stack's name as every job's alignbatch:deployment, the value the role requires
    assert '--deployment "${AWS::StackName}"' in render


@pytest.mark.filterwarnings("ignore:Tried to parse AWS")
def test_network_stack_in_endpoints_mode_creates_with_the_s3_prefix_list(aws: str) -> None:
    """The Endpoints variant (prefix-list egress, endpoint policy) is accepted by CloudFormation (moto)."""
    import boto3

    from tests.support.stacks import Layer, create_stack

    ec2 = boto3.client("ec2")
    lists = ec2.describe_managed_prefix_lists(
        Filters=[{"Name": "prefix-list-name", "Values": ["com.amazonaws.us-east-1.s3"]}]
    )["PrefixLists"]
    prefix_list = lists[0]["PrefixListId"] if lists else "pl-63a5400a"
    outputs = create_stack(
        boto3.client("cloudformation"),
        Layer(
            "alignbatch-network", "network.yaml", {"EgressMode": "Endpoints", "S3PrefixListId": prefix_list}
        ),
    )
    assert outputs["EgressMode"] == "Endpoints"
    endpoints = ec2.describe_vpc_endpoints(
        Filters=[{"Name": "service-name", "Values": ["com.amazonaws.us-east-1.s3"]}]
    )["VpcEndpoints"]
    (gateway,) = [e for e in endpoints if e["VpcEndpointType"] == "Gateway"]
    assert "starport-layer-bucket" in gateway["PolicyDocument"]


def _render(script: str, values: Mapping[str, str]) -> str:
    """Fn::Sub as CloudFormation applies it: ${Name} from values, ${!x} to a literal ${x}."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        return "${" + name[1:] + "}" if name.startswith("!") else values.get(name, f"x-{name}")

    return re.sub(r"\$\{([^}]+)\}", sub, script)


def test_rendered_bootstrap_is_valid_bash(templates: Mapping[str, Any]) -> None:
    import subprocess

    script = _render(_user_data(templates), {"EgressMode": "Nat"})
    proc = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("case", ["match", "mismatch", "empty"])
def test_bootstrap_refuses_an_archive_whose_hash_differs(
    templates: Mapping[str, Any], tmp_path: Path, case: str
) -> None:
    """The bootstrap's download-and-verify lines, `aws s3 cp` stubbed: only the hashed archive passes."""
    import hashlib
    import subprocess

    archive = tmp_path / "release.tar.gz"
    archive.write_bytes(b"a release archive")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    sha = {"match": digest, "mismatch": hashlib.sha256(b"other").hexdigest(), "empty": ""}[case]
    script = _user_data(templates)
    start = script.index('aws s3 cp --only-show-errors "s3://${ReferenceBucket}/${ReleaseArchiveKey}"')
    end = script.index("rm -rf /opt/alignbatch/src")
    fragment = _render(
        script[start:end], {"ReleaseArchiveSha256": sha, "ReferenceBucket": "b", "ReleaseArchiveKey": "k"}
    )
    stub = (
        f'set -euo pipefail\nworkdir={tmp_path}/work; mkdir -p "$workdir"\n'
        f'aws() {{ cp {archive} "${{@: -1}}"; }}\n'  # the last argument is the destination
    )
    proc = subprocess.run(
        ["bash", "-c", stub + fragment + "echo VERIFIED\n"], capture_output=True, text=True, timeout=30
    )
    if case == "match":
        assert proc.returncode == 0 and "VERIFIED" in proc.stdout, proc.stderr
    else:
        assert proc.returncode != 0 and "VERIFIED" not in proc.stdout
        assert "ReleaseArchiveSha256" in proc.stderr


def test_state_machine_stops_only_the_jobs_it_tagged(templates: Mapping[str, Any]) -> None:
    """Each submitJob task tags its job with the deployment; TerminateJob is conditioned on that tag."""
    workflow = templates["workflow.yaml"]["Resources"]
    definition = json.loads(
        _render(
            str(workflow["StateMachine"]["Properties"]["DefinitionString"]["Fn::Sub"][0]), {"NamePrefix": "p"}
        )
    )
    tasks = [st for st in definition["States"].values() if st["Type"] == "Task"]
    assert len(tasks) == 3
    for task in tasks:
        assert task["Parameters"]["Tags"] == {"alignbatch:deployment": "p"}, task
    by_action = {
        str(a): st for st in statements(workflow["StateMachineRole"]) for a in _as_list(st["Action"])
    }
    terminate = by_action["batch:TerminateJob"]["Condition"]["StringEquals"]
    assert terminate == {"aws:ResourceTag/alignbatch:deployment": {"Ref": "NamePrefix"}}
    tag = by_action["batch:TagResource"]["Condition"]
    assert tag["StringEquals"] == {"aws:RequestTag/alignbatch:deployment": {"Ref": "NamePrefix"}}
