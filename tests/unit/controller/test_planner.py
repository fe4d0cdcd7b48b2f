"""The pure object → job DAG planner."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config import DEFAULT_TIERS, PipelineOptions
from controller.inbox import S3Inbox
from controller.model import InputObject, Plan, Rejection, job_name, run_id_for, sample_name
from controller.planner import PlanContext, plan_run, tier_for

CTX = PlanContext(
    inbox_root="s3://inbox-bucket/incoming",
    results_root="s3://results-bucket/out",
    pipeline=PipelineOptions(alignstats_args=("-C",), target_bed="s3://ref/targets.bed"),
    tiers=DEFAULT_TIERS,
    pipeline_version="0.1.0",
)


def obj(
    key: str = "incoming/NA12878.bam", *, size: int = 100, index: bool = False, version: str | None = None
):
    return InputObject("inbox-bucket", key, size, "etag1", version, index, datetime(2026, 1, 1, tzinfo=UTC))


def test_missing_index_gives_three_chained_steps() -> None:
    plan = plan_run(obj(), CTX)
    assert isinstance(plan, Plan)
    assert [j.step for j in plan.jobs] == ["index", "alignstats", "summary"]
    index, stats, summary = plan.jobs
    assert stats.depends_on == ("index",) and summary.depends_on == ("alignstats",)
    assert plan.index_uri == "s3://results-bucket/out/indexes/NA12878.bam.bai"
    # #14: an unversioned object is read pinned to the event's ETag (an overwrite fails the job, 66).
    assert plan.input_uri == "s3://inbox-bucket/incoming/NA12878.bam?etag=etag1"
    assert index.command == (
        "alignbatch-worker", "--", "alignbatch-index", "-i", plan.input_uri,
        "-o", plan.index_uri,
    )  # fmt: skip
    assert stats.command == (
        "alignbatch-worker", "--index", plan.index_uri, "--", "alignstats", "-C",
        "-i", plan.input_uri, "-t", "s3://ref/targets.bed",
        "-o", "s3://results-bucket/out/reports/NA12878.bam.alignstats.json",
    )  # fmt: skip
    assert plan.row_uri == f"s3://results-bucket/out/rows/{plan.run_id}.json"
    assert summary.command[:7] == (
        "alignbatch-worker",
        "--",
        "alignbatch-summary",
        "--report",
        plan.report_uri,
        "--output",
        plan.row_uri,
    )
    assert summary.tags["alignbatch:run-id"] == plan.run_id
    assert summary.tags["alignbatch:step"] == "summary"
    assert summary.tags["alignbatch:sample"] == "NA12878"
    assert "alignbatch:deployment" not in summary.tags  # none configured (local mode)


def test_every_job_carries_the_deployment_its_role_may_stop() -> None:
    plan = plan_run(obj(), PlanContext(**{**CTX.__dict__, "deployment": "alignbatch-controller"}))
    assert {j.tags["alignbatch:deployment"] for j in plan.jobs} == {"alignbatch-controller"}
    assert len(plan.jobs) == 3


def test_index_present_skips_index_step() -> None:
    plan = plan_run(obj(index=True), CTX)
    assert [j.step for j in plan.jobs] == ["alignstats", "summary"]
    assert plan.jobs[0].depends_on == () and "--index" not in plan.jobs[0].command


def test_render_command_fills_job_ids() -> None:
    plan = plan_run(obj(), CTX)
    cmd = plan.jobs[2].worker.argv({"index": "J1", "alignstats": "J2"})
    assert "job_id_alignstats=J2" in cmd and "job_id_index=J1" in cmd
    assert not any("{job_id" in a for a in cmd)


def test_deterministic_names_and_ids() -> None:
    a, b = plan_run(obj(), CTX), plan_run(obj(), CTX)
    assert a == b
    assert plan_run(obj(version="v2"), CTX).run_id != a.run_id
    assert run_id_for("b", "k", "e") != run_id_for("b", "k", "f")


def test_tiers_by_size() -> None:
    assert tier_for(1, DEFAULT_TIERS).vcpus == 1
    assert tier_for(3 * 1024**3, DEFAULT_TIERS).vcpus == 2
    assert tier_for(10**15, DEFAULT_TIERS).vcpus == 4
    assert plan_run(obj(size=10**12), CTX).job("alignstats").memory_mib == 8192


def test_cram_needs_reference() -> None:
    rejected = plan_run(obj("incoming/x.cram"), CTX)
    assert isinstance(rejected, Rejection) and "reference" in rejected.reason
    ctx = PlanContext(**{**CTX.__dict__, "pipeline": PipelineOptions(reference_fasta="s3://ref/g.fa")})
    plan = plan_run(obj("incoming/x.cram"), ctx)
    assert plan.index_uri.endswith("x.cram.crai")
    assert "-T" in plan.jobs[0].command and "-T" in plan.jobs[1].command


@pytest.mark.parametrize("key", ["a/../b.bam", "./x.bam", "a//b.bam", "/abs.bam", "x" * 1000 + ".bam"])
def test_unsafe_keys_rejected_with_reason(key: str) -> None:
    assert S3Inbox("inbox-bucket").validate_key(key)
    rejected = plan_run(obj(key), CTX)
    assert isinstance(rejected, Rejection) and re.search(r"rename|shorten", rejected.reason)
    assert rejected.run_id == run_id_for("inbox-bucket", key, "etag1") and rejected.inbox_key == key


def test_local_plan_uses_paths(tmp_path) -> None:
    ctx = PlanContext(
        inbox_root=str(tmp_path / "inbox"), results_root=str(tmp_path / "results"),
        pipeline=PipelineOptions(), tiers=DEFAULT_TIERS, pipeline_version="0.1.0",
    )  # fmt: skip
    o = InputObject(str(tmp_path / "inbox"), "sub dir/ünï code.bam", 10, "1-10", None, True)
    plan = plan_run(o, ctx)
    assert plan.input_uri == str(tmp_path / "inbox" / "sub dir" / "ünï code.bam")
    expected = tmp_path / "results" / "reports" / "sub dir" / "ünï code.bam.alignstats.json"
    assert plan.report_uri == str(expected)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=200), st.integers(1, 99))
def test_job_names_are_valid_batch_names(sample: str, attempt: int) -> None:
    name = job_name(sample, "r0123456789abcdef", "alignstats", attempt)
    assert 2 <= len(name) <= 128
    assert name[0].isalnum() and all(c.isalnum() or c in "-_" for c in name)
    assert name.isascii()


def test_sample_name() -> None:
    assert sample_name("a/b/NA1.final.bam") == "NA1.final"
    assert sample_name("x.CRAM") == "x"


def test_tags_are_in_the_aws_tag_charset() -> None:
    plan = plan_run(obj("incoming/plus+and% #1,ü.bam"), CTX)
    sample_tag = plan.jobs[0].tags["alignbatch:sample"]
    assert sample_tag == "plus+and_ _1_ü"
    assert all(c.isalnum() or c in " _.:/=+-@" for v in plan.jobs[0].tags.values() for c in v)


def test_a_key_that_looks_like_a_job_id_token_is_passed_verbatim() -> None:
    """Job ids of upstream steps are typed parts of the command: text in a key is never substituted."""
    plan = plan_run(obj("incoming/x{job_id:summary}{job_id:index}.bam"), CTX)
    argv = plan.job("summary").worker.argv({"index": "J1", "alignstats": "J2", "summary": "J3"})
    assert "sample=x{job_id:summary}{job_id:index}" in argv
    assert "inbox_key=x{job_id:summary}{job_id:index}.bam" in argv
    assert "job_id_index=J1" in argv and "job_id_alignstats=J2" in argv
    assert not any("J3" in a for a in argv)


def test_submission_order_follows_depends_on() -> None:
    from controller.model import submission_order

    plan = plan_run(obj(), CTX)
    assert [s.step for s in submission_order(reversed(plan.jobs))] == ["index", "alignstats", "summary"]
    without_index = plan_run(obj(index=True), CTX).jobs
    assert [s.step for s in submission_order(without_index[::-1])] == ["alignstats", "summary"]


def test_admit_then_build_is_plan_run_with_the_probe_in_between() -> None:
    """Intake validates once (admit), probes for an index, then builds; the result equals plan_run's."""
    from dataclasses import replace

    from controller.planner import Admission, admit, build_plan

    o = obj()
    admission = admit(o, CTX.inbox)
    assert isinstance(admission, Admission) and admission.inbox_key == "NA12878.bam"
    with_index = replace(admission, obj=replace(o, index_present=True))
    assert build_plan(with_index, CTX) == plan_run(obj(index=True), CTX)
    rejected = admit(obj("incoming/a//b.bam"), CTX.inbox)
    assert (
        isinstance(rejected, Rejection)
        and rejected.input_uri == "s3://inbox-bucket/incoming/a//b.bam?etag=etag1"
    )


def test_an_object_version_is_read_pinned_and_keeps_its_own_report_and_index() -> None:
    # #14: an overwrite or delete while the run is in flight cannot change what it reads or writes.
    v1, v2 = plan_run(obj(version="V1.a"), CTX), plan_run(obj(version="V2_b"), CTX)
    assert isinstance(v1, Plan) and isinstance(v2, Plan) and v1.run_id != v2.run_id
    assert v1.input_uri == "s3://inbox-bucket/incoming/NA12878.bam?versionId=V1.a"
    assert v1.report_uri == "s3://results-bucket/out/reports/NA12878.bam@V1.a.alignstats.json"
    assert v2.report_uri == "s3://results-bucket/out/reports/NA12878.bam@V2_b.alignstats.json"
    assert v1.index_uri == "s3://results-bucket/out/indexes/NA12878.bam@V1.a.bai"
    index, stats, _ = v1.jobs
    assert index.command[index.command.index("-i") + 1] == v1.input_uri
    assert stats.command[stats.command.index("-i") + 1] == v1.input_uri
    assert stats.command[stats.command.index("-o") + 1] == v1.report_uri
    unversioned = plan_run(obj(), CTX)
    assert isinstance(unversioned, Plan)
    assert unversioned.report_uri == "s3://results-bucket/out/reports/NA12878.bam.alignstats.json"
