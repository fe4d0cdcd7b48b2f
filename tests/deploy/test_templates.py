"""Static checks of deploy/cloudformation: cfn-lint, checkov, and the properties the issue asks for that
no linter knows about (least privilege, encryption, retry semantics, stable output names)."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from core.exitcodes import RETRYABLE, ExitCode
from tests.support.deploy import CFN_DIR, ROOT, TEMPLATES, require_tool
from tests.support.stacks import BATCH_OUTPUTS, STORAGE_OUTPUTS

EXPECTED_TEMPLATES = {"network.yaml", "storage.yaml", "batch.yaml", "controller.yaml", "workflow.yaml"}

# Actions IAM cannot scope to a resource; the only ones allowed on Resource "*".
UNSCOPABLE_ACTIONS = {
    "batch:DescribeJobs",
    "batch:ListJobs",
    "batch:DescribeJobQueues",
    "batch:DescribeJobDefinitions",
    "batch:DescribeComputeEnvironments",
    "ec2:DescribeTags",
    "cloudwatch:PutMetricData",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
}


def test_one_template_per_layer() -> None:
    assert {p.name for p in TEMPLATES} == EXPECTED_TEMPLATES


def test_cfn_lint_reports_no_errors() -> None:
    cfn_lint = require_tool("cfn-lint", "pip install cfn-lint")
    proc = subprocess.run(
        [cfn_lint, "--non-zero-exit-code", "error", "--", *map(str, TEMPLATES)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_checkov_has_no_failed_checks() -> None:
    checkov = require_tool("checkov", "scripts/install-tools.sh installs it into .tools/")
    # One run over the whole directory (checkov is slow to start).
    proc = subprocess.run(
        [checkov, "-d", str(CFN_DIR), "--framework", "cloudformation", "-o", "json", "--quiet", "--compact"],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=ROOT,
        # offline: no guideline download from the vendor's platform
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert sum(r["summary"]["passed"] for r in reports) > 50
    assert proc.returncode == 0, proc.stderr


def _resources(templates: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for name, template in templates.items():
        for logical_id, resource in template["Resources"].items():
            yield name, logical_id, resource


def test_every_checkov_skip_carries_its_reason(templates: Mapping[str, Any]) -> None:
    skips = 0
    for name, logical_id, resource in _resources(templates):
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            skips += 1
            assert len(str(skip.get("comment", "")).strip()) >= 30, f"{name} {logical_id} {skip.get('id')}"
    assert skips > 0


def test_stable_output_names(templates: Mapping[str, Any]) -> None:
    assert set(templates["storage.yaml"]["Outputs"]) >= STORAGE_OUTPUTS
    assert set(templates["batch.yaml"]["Outputs"]) >= BATCH_OUTPUTS
    for name, template in templates.items():
        for key, output in template["Outputs"].items():
            export = output.get("Export")
            if export:  # every export is "<stack name>-<output key>", which the imports rely on
                assert export["Name"] == {"Fn::Sub": "${AWS::StackName}-" + key}, (name, key)


def test_parameters_are_documented(templates: Mapping[str, Any]) -> None:
    for name, template in templates.items():
        assert len(template["Description"]) > 40, name
        for param, spec in template.get("Parameters", {}).items():
            assert len(spec.get("Description", "")) > 15, (name, param)


def test_imports_use_the_long_form_with_sub(templates: Mapping[str, Any]) -> None:
    """Moto resolves `Fn::ImportValue: !Sub ...`; every import names a stack parameter."""

    def walk(node: Any) -> Iterator[Any]:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key == "Fn::ImportValue":
                    yield value
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    count = 0
    for template in templates.values():
        for value in walk(template["Resources"]):
            count += 1
            assert isinstance(value, Mapping) and "Fn::Sub" in value, value
            assert str(value["Fn::Sub"]).startswith("${") and "StackName}-" in str(value["Fn::Sub"])
    assert count > 20


# -- IAM: least privilege --------------------------------------------------------------------------------
def _statements(resource: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for policy in resource["Properties"].get("Policies", []):
        yield from policy["PolicyDocument"]["Statement"]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def test_no_wildcard_grants_anywhere(templates: Mapping[str, Any]) -> None:
    for name, logical_id, resource in _resources(templates):
        if resource["Type"] != "AWS::IAM::Role":
            continue
        managed = json.dumps(resource["Properties"].get("ManagedPolicyArns", []))
        assert "AmazonS3FullAccess" not in managed and "AdministratorAccess" not in managed
        for st in _statements(resource):
            assert st["Effect"] == "Allow"
            actions = [str(a) for a in _as_list(st["Action"])]
            for action in actions:
                assert action != "*" and not action.endswith(":*"), (name, logical_id, action)
            if st["Resource"] == "*":
                assert set(actions) <= UNSCOPABLE_ACTIONS, (name, logical_id, actions)


def test_job_role_reads_inbox_and_reference_writes_results_only(templates: Mapping[str, Any]) -> None:
    role = templates["batch.yaml"]["Resources"]["JobRole"]
    writes = []
    for st in _statements(role):
        actions = set(map(str, _as_list(st["Action"])))
        text = json.dumps(st["Resource"])
        if actions & {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}:
            writes.append(st)
            assert "ResultsBucket" in text and "ResultsPrefix" in text
            assert "Inbox" not in text and "Reference" not in text
        if "s3:GetObject" in actions:
            assert "Prefix" in text  # every read is limited to a prefix
        assert not actions & {"s3:DeleteObject", "s3:PutBucketPolicy", "s3:PutObjectAcl"}
    assert len(writes) == 1


def test_controller_role_scoped_to_its_queue_job_definitions_and_job_role(
    templates: Mapping[str, Any],
) -> None:
    role = templates["controller.yaml"]["Resources"]["ControllerRole"]
    by_action: dict[str, list[str]] = {}
    for st in _statements(role):
        for action in _as_list(st["Action"]):
            by_action.setdefault(str(action), []).append(json.dumps(st["Resource"]))
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"):
        assert by_action[action] == [by_action[action][0]] and "InboxQueueArn" in by_action[action][0]
    (submit,) = by_action["batch:SubmitJob"]
    assert (
        "JobQueueArn" in submit
        and "JobDefinitionAlignstats" in submit
        and '*"' not in submit.replace(":*", "")
    )
    # No role is passed by any code path (issue #15); stopping jobs is TerminateJob, tag-conditioned.
    assert "iam:PassRole" not in by_action and "batch:CancelJob" not in by_action
    assert ":job/*" in by_action["batch:TerminateJob"][0]


def test_volumes_encrypted_and_imdsv2_required(templates: Mapping[str, Any]) -> None:
    launch_templates = [
        res for _, _, res in _resources(templates) if res["Type"] == "AWS::EC2::LaunchTemplate"
    ]
    assert len(launch_templates) == 2
    for lt in launch_templates:
        data = lt["Properties"]["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        for mapping in data["BlockDeviceMappings"]:
            assert mapping["Ebs"]["Encrypted"] is True and mapping["Ebs"]["VolumeType"] == "gp3"


def test_buckets_deny_plain_http_and_use_kms(templates: Mapping[str, Any]) -> None:
    storage = templates["storage.yaml"]["Resources"]
    for bucket in ("InboxBucket", "ResultsBucket", "ReferenceBucket"):
        props = storage[bucket]["Properties"]
        rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        assert all(props["PublicAccessBlockConfiguration"].values())
        assert props["VersioningConfiguration"]["Status"] == "Enabled"
        assert props["LifecycleConfiguration"]["Rules"]
        policy = storage[f"{bucket}Policy"]["Properties"]["PolicyDocument"]
        sids = {st["Sid"]: st for st in policy["Statement"]}
        assert sids["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert any(
            "server-side-encryption" in json.dumps(st.get("Condition", {})) for st in policy["Statement"]
        )


def test_queue_policy_allows_only_the_inbox_bucket_and_redrives_to_dlq(templates: Mapping[str, Any]) -> None:
    storage = templates["storage.yaml"]["Resources"]
    (allow,) = [
        st
        for st in storage["InboxQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
        if st["Effect"] == "Allow"
    ]
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"} and allow["Action"] == "sqs:SendMessage"
    assert "-inbox-" in json.dumps(allow["Condition"]["ArnEquals"]["aws:SourceArn"])
    assert "aws:SourceAccount" in allow["Condition"]["StringEquals"]
    redrive = storage["InboxQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}


# -- Batch retry strategy ----------------------------------------------------------------------------------
def batch_retry_action(
    rules: list[Mapping[str, str]], *, exit_code: int | None, reason: str = "", status_reason: str = ""
) -> str:
    """AWS Batch's documented evaluation: the first entry whose every given pattern matches decides;
    patterns are globs on the exit code (only when the container has one), the container's reason and the
    job's status reason; when no entry matches, the job is retried."""
    for rule in rules:
        checks = []
        if "OnExitCode" in rule:
            checks.append(exit_code is not None and fnmatch.fnmatchcase(str(exit_code), rule["OnExitCode"]))
        if "OnReason" in rule:
            checks.append(fnmatch.fnmatchcase(reason, rule["OnReason"]))
        if "OnStatusReason" in rule:
            checks.append(fnmatch.fnmatchcase(status_reason, rule["OnStatusReason"]))
        if all(checks):
            return str(rule["Action"])
    return "RETRY"


@pytest.mark.parametrize(
    "definition", ["IndexJobDefinition", "AlignstatsJobDefinition", "SummaryJobDefinition"]
)
def test_retry_strategy_retries_infrastructure_and_transient_exits_only(
    templates: Mapping[str, Any], definition: str
) -> None:
    props = templates["batch.yaml"]["Resources"][definition]["Properties"]
    strategy = props["RetryStrategy"]
    rules = [{k: str(v) for k, v in r.items()} for r in strategy["EvaluateOnExit"]]
    assert len(rules) <= 5  # Batch's limit
    assert strategy["Attempts"] == {"Ref": "JobAttempts"}

    def act(**kw: Any) -> str:
        return batch_retry_action(rules, **kw)

    # Spot reclaim: Batch gives up on the job, and the controller submits the step again itself, on
    # the On-Demand queue after N reclaims (controller/placement.py); a Batch retry never changes queue.
    assert act(exit_code=143, status_reason="Host EC2 (instance i-0abc) terminated.") == "EXIT"
    assert act(exit_code=None, status_reason="Host EC2 (instance i-0abc) terminated.") == "EXIT"
    assert act(exit_code=None, reason="CannotPullContainerError: pull rate exceeded") == "RETRY"
    assert act(exit_code=None, reason="ResourceInitializationError: unable to pull secrets") == "RETRY"
    for code in RETRYABLE:
        assert act(exit_code=int(code), status_reason="Essential container in task exited") == "RETRY"
    for code in ExitCode:
        if code == ExitCode.OK or code in RETRYABLE:
            continue
        assert act(exit_code=int(code), status_reason="Essential container in task exited") == "EXIT", code
    for tool_code in (1, 2, 137, 139):  # alignstats errors, OOM kill, the documented SIGSEGV
        assert act(exit_code=tool_code, status_reason="Essential container in task exited") == "EXIT"


def test_job_definitions_run_the_worker_with_scratch_and_kms(templates: Mapping[str, Any]) -> None:
    resources = templates["batch.yaml"]["Resources"]
    for definition in ("IndexJobDefinition", "AlignstatsJobDefinition", "SummaryJobDefinition"):
        container = resources[definition]["Properties"]["ContainerProperties"]
        assert container["Command"][0] == "alignbatch-worker"
        env = {e["Name"]: e["Value"] for e in container["Environment"]}
        assert env["ALIGNBATCH_SCRATCH"] == "/scratch"
        assert env["ALIGNBATCH_SSE_KMS_KEY_ID"] == {
            "Fn::ImportValue": {"Fn::Sub": "${StorageStackName}-KmsKeyArn"}
        }
        assert {"SourceVolume": "scratch", "ContainerPath": "/scratch", "ReadOnly": False} in container[
            "MountPoints"
        ]
        assert container["LogConfiguration"]["LogDriver"] == "awslogs"
        assert container["User"] == "10001" and container["ReadonlyRootFilesystem"] is True
        assert "AttemptDurationSeconds" in resources[definition]["Properties"]["Timeout"]
    for queue in ("JobQueue", "JobQueueOnDemand"):
        actions = resources[queue]["Properties"]["JobStateTimeLimitActions"]
        assert {a["State"] for a in actions} == {"RUNNABLE"} and {a["Action"] for a in actions} == {"CANCEL"}


# -- Fair share (#18) -----------------------------------------------------------------------------------
def test_both_queues_share_capacity_by_project_under_one_fair_share_policy(
    templates: Mapping[str, Any],
) -> None:
    batch = templates["batch.yaml"]
    policy = batch["Resources"]["SchedulingPolicy"]
    assert policy["Type"] == "AWS::Batch::SchedulingPolicy"
    fairshare = policy["Properties"]["FairsharePolicy"]
    assert fairshare["ShareDecaySeconds"] == {"Ref": "ShareDecaySeconds"}
    assert fairshare["ComputeReservation"] == {"Ref": "ComputeReservation"}
    # The controller's default share ([fair_share] default_share) is in the policy from the start.
    assert {"ShareIdentifier": "default", "WeightFactor": 1} in fairshare["ShareDistribution"]
    for queue in ("JobQueue", "JobQueueOnDemand"):  # a Spot-fallback attempt keeps its shareIdentifier
        assert batch["Resources"][queue]["Properties"]["SchedulingPolicyArn"] == {"Ref": "SchedulingPolicy"}
    output = batch["Outputs"]["SchedulingPolicyArn"]["Value"]["Fn::Sub"]
    name = policy["Properties"]["Name"]["Fn::Sub"]
    assert output.endswith(f":scheduling-policy/{name}")  # the ARN of exactly that policy
    # The controller may read and tune that one policy, nothing else.
    role = templates["controller.yaml"]["Resources"]["ControllerRole"]
    [tune] = [st for st in _statements(role) if "batch:UpdateSchedulingPolicy" in _as_list(st["Action"])]
    assert set(tune["Action"]) == {"batch:DescribeSchedulingPolicies", "batch:UpdateSchedulingPolicy"}
    assert tune["Resource"] == [{"Fn::ImportValue": {"Fn::Sub": "${BatchStackName}-SchedulingPolicyArn"}}]
    # A fair-share queue refuses a job without a shareIdentifier: the workflow's tasks name one too.
    definition = templates["workflow.yaml"]["Resources"]["StateMachine"]["Properties"]["DefinitionString"]
    text = definition["Fn::Sub"][0]
    assert text.count('"ShareIdentifier": "${ShareIdentifier}"') == text.count("batch:submitJob.sync") == 3
