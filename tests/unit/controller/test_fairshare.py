"""Fair share (#18): the project of an inbox key, its shareIdentifier on every job, the policy's weights."""

from __future__ import annotations

import pytest

from controller.config import ConfigError, parse_config
from controller.fairshare import distribution
from controller.model import InputObject
from controller.planner import PlanContext, plan_run

RAW = {
    "fair_share": {
        "scheduling_policy_arn": "arn:aws:batch:us-east-1:123456789012:scheduling-policy/p",
        "default_weight": 1.0,
        "project": [
            {"prefix": "archive/", "share": "archive", "weight": 4},
            {"prefix": "archive/urgent/", "share": "urgent", "weight": 0.5},
            {"prefix": "daily/", "share": "daily"},
        ],
    }
}


def test_the_longest_prefix_names_the_project_and_the_rest_share_the_default() -> None:
    fs = parse_config(RAW, env={}).fair_share
    assert fs.enabled
    assert fs.share_for("archive/2019/a.bam") == "archive"
    assert fs.share_for("archive/urgent/b.bam") == "urgent"
    assert fs.share_for("daily/c.bam") == "daily"
    assert fs.share_for("elsewhere/d.bam") == "default"
    assert fs.weights() == {"default": 1.0, "archive": 4.0, "urgent": 0.5, "daily": 1.0}
    assert distribution(fs)[0] == {"shareIdentifier": "archive", "weightFactor": 4.0}
    assert not parse_config({}, env={}).fair_share.enabled  # no policy: FIFO queues, nothing sent


@pytest.mark.parametrize(
    "project, message",
    [
        ({"prefix": "a/", "share": "has space"}, "alphanumeric"),
        ({"prefix": "a/", "share": "under_score"}, "alphanumeric"),
        ({"prefix": "a/", "share": "ok", "weight": 0}, "between 0.0001 and 999.9999"),
        ({"prefix": "a/", "share": "ok", "weigth": 2}, "takes prefix, share and weight only"),
    ],
)
def test_bad_projects_are_refused_with_where(project: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        parse_config({"fair_share": {"project": [project]}}, env={})
    assert "[[fair_share.project]] #1" in str(exc.value)


def test_every_job_of_a_plan_carries_the_share_and_the_project_cost_tag() -> None:
    obj = InputObject("inbox", "archive/x.bam", 10, "e1", None)
    defaults = parse_config({}, env={})
    ctx = PlanContext(
        inbox_root="s3://inbox", results_root="s3://results/ab", pipeline=defaults.pipeline.default,
        tiers=defaults.tiers, pipeline_version="0.1.0", share="archive",
    )  # fmt: skip
    plan = plan_run(obj, ctx)
    assert [j.share for j in plan.jobs] == ["archive"] * 3
    assert {j.tags["alignbatch:project"] for j in plan.jobs} == {"archive"}
    # The share survives the ledger's JSON, and a spec written before it reads as none.
    spec = plan.jobs[1]
    assert type(spec).from_json(spec.to_json()).share == "archive"
    assert "share" not in type(spec).from_json(spec.to_json().replace(', "share": "archive"', "")).to_json()
