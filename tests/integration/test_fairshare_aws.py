"""Fair share and cost tags on moto (#18): what SubmitJob carries, and the weights written to the policy.

moto stores a scheduling policy and a queue's reference to it but schedules FIFO and neither requires nor
refuses `shareIdentifier`, so the request itself is observed (a botocore event hook, nothing altered).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.config import parse_config
from controller.daemon import build_controller
from controller.executors.aws_batch import BatchExecutor
from controller.executors.base import SubmitRequest
from controller.fairshare import apply_weights
from controller.metrics import Metrics
from tests.support.aws_env import AwsEnv, create_aws_env

# The tags AWS split cost allocation data groups a job's cost by, once activated as cost allocation tags.
COST_TAGS = {
    "alignbatch:sample", "alignbatch:run-id", "alignbatch:step", "alignbatch:pipeline-version",
    "alignbatch:project",
}  # fmt: skip


@pytest.fixture()
def env(aws: str) -> AwsEnv:
    return create_aws_env(aws)


def _policy(env: AwsEnv) -> str:
    batch = env.client("batch")
    return str(
        batch.create_scheduling_policy(
            name="ab-fairshare",
            fairsharePolicy={
                "shareDecaySeconds": 3600, "computeReservation": 10,
                "shareDistribution": [{"shareIdentifier": "default", "weightFactor": 1.0}],
            },
        )["arn"]
    )  # fmt: skip


def _sent(executor: BatchExecutor) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    executor.client.meta.events.register(
        "provide-client-params.batch.SubmitJob", lambda params, **_: sent.append(dict(params))
    )
    return sent


def test_weights_from_the_config_are_written_into_the_policy_once(env: AwsEnv) -> None:
    arn = _policy(env)
    cfg = parse_config(
        {"fair_share": {"scheduling_policy_arn": arn, "project": [{"prefix": "archive/", "share": "archive",
                                                                     "weight": 4}]}},
        env={},
    ).fair_share  # fmt: skip
    batch = env.client("batch")
    assert apply_weights(batch, cfg) is True
    [policy] = batch.describe_scheduling_policies(arns=[arn])["schedulingPolicies"]
    shares = {d["shareIdentifier"]: d["weightFactor"] for d in policy["fairsharePolicy"]["shareDistribution"]}
    assert shares == {"archive": 4.0, "default": 1.0}
    assert policy["fairsharePolicy"]["shareDecaySeconds"] == 3600  # the stack's settings are kept
    assert apply_weights(batch, cfg) is False  # already so: no write


def test_every_job_carries_its_share_and_the_cost_allocation_tags(
    env: AwsEnv, tmp_path: Path, data_dir: Path
) -> None:
    arn = _policy(env)
    extra = f"""
[fair_share]
scheduling_policy_arn = "{arn}"
[[fair_share.project]]
prefix = "archive/"
share = "archive"
weight = 4
"""
    cfg_path = tmp_path / "controller.toml"
    cfg_path.write_text(env.config_toml(tmp_path / "state.db", extra=extra))
    from controller.config import load_config

    ctl = build_controller(load_config(cfg_path), metrics=Metrics(), once=True)
    sent = _sent(ctl.executor)
    s3 = env.client("s3")
    body = (data_dir / "i_edge.bam").read_bytes()
    for key in ("incoming/archive/old.bam", "incoming/daily/new.bam"):
        s3.put_object(Bucket=env.inbox_bucket, Key=key, Body=body)
    for _ in range(6):
        ctl.poll()
        ctl.submit_ready()
    assert len(sent) == 6  # two objects, three jobs each
    for params in sent:
        assert (
            params["propagateTags"] is True
        )  # tags reach the ECS task, where split cost allocation reads them
        assert set(params["tags"]) >= COST_TAGS, params["tags"]
        assert params["shareIdentifier"] == params["tags"]["alignbatch:project"]
    assert {p["shareIdentifier"] for p in sent} == {"archive", "default"}
    # The applied weights are in the policy the queues reference.
    [policy] = env.client("batch").describe_scheduling_policies(arns=[arn])["schedulingPolicies"]
    assert {d["shareIdentifier"] for d in policy["fairsharePolicy"]["shareDistribution"]} == {
        "archive",
        "default",
    }


def test_no_share_identifier_without_a_policy(env: AwsEnv) -> None:
    ex = BatchExecutor(job_queue=env.job_queue, job_definitions=env.job_definitions)
    sent = _sent(ex)
    ex.submit(SubmitRequest("n1", "index", ("alignbatch-worker", "--help"), (), 1, 512, 60, share="archive"))
    assert "shareIdentifier" not in sent[0]  # a FIFO queue refuses one


def test_a_queue_with_a_policy_gets_share_identifiers_even_before_the_config_names_it(env: AwsEnv) -> None:
    batch = env.client("batch")
    ce = batch.describe_job_queues(jobQueues=[env.job_queue])["jobQueues"][0]["computeEnvironmentOrder"]
    batch.create_job_queue(
        jobQueueName="ab-fair", state="ENABLED", priority=1, computeEnvironmentOrder=ce,
        schedulingPolicyArn=_policy(env),
    )  # fmt: skip
    ex = BatchExecutor(
        job_queue=env.job_queue,
        job_definitions=env.job_definitions,
        fallback_queues=["ab-fair"],
        fair_share=None,  # as each queue says (what the controller passes without a configured policy)
    )
    sent = _sent(ex)
    request = SubmitRequest("n1", "index", ("alignbatch-worker", "--help"), (), 1, 512, 60, share="archive")
    ex.submit(request)  # the FIFO queue: none
    ex.submit(SubmitRequest(**{**request.__dict__, "name": "n2", "queue": "ab-fair"}))
    assert "shareIdentifier" not in sent[0] and sent[1]["shareIdentifier"] == "archive"
