"""The job state rule, its queue and the alarms of deploy/cloudformation/controller.yaml (#14). moto's
CloudFormation ignores alarms and queue policies, so these are checked in the template itself."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.deploy import CFN_DIR, load_template


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(CFN_DIR / "controller.yaml")


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _metric_names(alarm: dict[str, Any]) -> set[str]:
    props = alarm["Properties"]
    names = {props["MetricName"]} if "MetricName" in props else set()
    for m in props.get("Metrics", []):
        if "MetricStat" in m:
            names.add(m["MetricStat"]["Metric"]["MetricName"])
        if "Expression" in m:
            names |= {w for w in ("disk_used_percent",) if w in str(m["Expression"])}
    return names


def test_every_alarm_the_issue_asks_for_exists(template: dict[str, Any]) -> None:
    alarms = _of_type(template, "AWS::CloudWatch::Alarm")
    by_metric = {name: _metric_names(a) for name, a in alarms.items()}
    wanted = {
        "InboxBacklogAlarm": "ApproximateAgeOfOldestMessage",
        "DeadLetterAlarm": "ApproximateNumberOfMessagesVisible",
        "ControllerDiskAlarm": "disk_used_percent",
        "ControllerHeartbeatAlarm": "alignbatch_loop_last_success_timestamp_seconds",
        "FailedJobsAlarm": "MatchedEvents",
    }
    for name, metric in wanted.items():
        assert metric in by_metric.get(name, set()), f"{name} should alarm on {metric}"
    dlq = alarms["DeadLetterAlarm"]["Properties"]
    assert (dlq["Threshold"], dlq["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert "DeadLetterQueueUrl" in str(dlq["Dimensions"]) and "InboxQueueUrl" in str(
        alarms["InboxBacklogAlarm"]["Properties"]["Dimensions"]
    )
    # A host that stops sending must alarm, not go quiet.
    for name in ("ControllerDiskAlarm", "ControllerHeartbeatAlarm"):
        assert alarms[name]["Properties"]["TreatMissingData"] == "breaching"
    assert "FailedJobsRule" in str(alarms["FailedJobsAlarm"]["Properties"]["Dimensions"])


def test_job_state_changes_of_our_queues_reach_a_dedicated_encrypted_queue(template: dict[str, Any]) -> None:
    res = template["Resources"]
    rule = res["JobStateRule"]["Properties"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.batch"] and pattern["detail-type"] == ["Batch Job State Change"]
    queues = str(pattern["detail"]["jobQueue"])
    assert "JobQueueArn" in queues and "JobQueueOnDemandArn" in queues
    assert [t["Arn"] for t in rule["Targets"]] == [{"Fn::GetAtt": ["JobStateQueue", "Arn"]}]
    assert res["JobStateQueue"]["Properties"]["SqsManagedSseEnabled"] is True
    failed = res["FailedJobsRule"]["Properties"]["EventPattern"]
    assert failed["detail"]["status"] == ["FAILED"]


def test_only_the_rule_may_send_to_the_state_queue(template: dict[str, Any]) -> None:
    policy = template["Resources"]["JobStateQueuePolicy"]["Properties"]["PolicyDocument"]
    [allow] = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "events.amazonaws.com"} and allow["Action"] == "sqs:SendMessage"
    assert allow["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": ["JobStateRule", "Arn"]}
    assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in str(s) for s in policy["Statement"])


def test_the_controller_may_consume_the_state_queue_and_finds_its_url(template: dict[str, Any]) -> None:
    pol = template["Resources"]["ControllerJobStatePolicy"]["Properties"]
    assert pol["Roles"] == [{"Ref": "ControllerRole"}]
    [stmt] = pol["PolicyDocument"]["Statement"]
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= set(stmt["Action"])
    assert stmt["Resource"] == {"Fn::GetAtt": ["JobStateQueue", "Arn"]}
    assert "JobStateQueueUrl" in template["Outputs"]
