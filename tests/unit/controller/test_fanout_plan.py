"""A large indexed BAM planned as a shard array → merge → summary (#17), and when it is not."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from controller.config import DEFAULT_TIERS, FanoutConfig, PipelineOptions
from controller.model import InputObject, JobSpec, Plan
from controller.planner import PlanContext, fanout_decision, parts_digest, plan_run

GB = 1_000_000_000
FAN = FanoutConfig(min_projected_seconds=900, bytes_per_second=100_000_000, target_shard_seconds=120)
CTX = PlanContext(
    inbox_root="s3://inbox-bucket/incoming",
    results_root="s3://results-bucket/out",
    pipeline=PipelineOptions(alignstats_args=("-C",), target_bed="s3://ref/targets.bed"),
    tiers=DEFAULT_TIERS,
    pipeline_version="0.1.0",
    fanout=FAN,
)


def obj(key: str = "incoming/NA12878.bam", size: int = 100 * GB, index: bool = True) -> InputObject:
    return InputObject("inbox-bucket", key, size, "etag1", "v1", index, datetime(2026, 1, 1, tzinfo=UTC))


def test_a_100_gb_bam_goes_as_a_shard_array_then_a_merge() -> None:
    plan = plan_run(obj(), CTX)
    assert isinstance(plan, Plan)
    assert [j.step for j in plan.jobs] == ["shard", "alignstats", "summary"]
    shard, merge, summary = plan.jobs
    assert plan.shards == shard.array_size == 9  # 1,000 s projected / 120 s per shard
    assert shard.retry_attempts == FAN.child_attempts and shard.depends_on == ()
    prefix = f"s3://results-bucket/out/parts/NA12878.bam@v1/{parts_digest(_stats_args(shard), 9)}/"
    assert shard.command[-4:] == ("--shard-of", "9", "--part-out", prefix)
    assert shard.outputs == tuple(f"{prefix}part-{i}-of-9.json" for i in range(9))
    assert merge.depends_on == ("shard",) and merge.array_size == 0
    assert merge.command == (
        "alignbatch-worker", "--", "alignstats", "--merge-parts", "-o", plan.report_uri, *shard.outputs,
    )  # fmt: skip
    assert summary.depends_on == ("alignstats",)
    meta = summary.command
    assert "shards=9" in meta and any(a.startswith("job_id_shard=") for a in meta)


def _stats_args(shard: JobSpec) -> list[str]:
    args = list(shard.worker.tool_args)
    return [str(a) for a in args[: args.index("--shard-of")]]


def test_an_unindexed_large_bam_is_indexed_first_and_the_children_use_that_index() -> None:
    plan = plan_run(obj(index=False), CTX)
    assert isinstance(plan, Plan)
    index, shard, merge, _ = plan.jobs
    assert [index.step, shard.step, merge.step] == ["index", "shard", "alignstats"]
    assert shard.depends_on == ("index",) and shard.worker.index == plan.index_uri


def test_small_files_go_as_one_job_and_the_row_says_one_shard() -> None:
    plan = plan_run(obj(size=50 * GB), CTX)  # 500 s projected: under the 900 s threshold
    assert isinstance(plan, Plan) and plan.shards == 0 and not plan.fanout_declined
    assert [j.step for j in plan.jobs] == ["alignstats", "summary"]
    assert "shards=1" in plan.jobs[-1].command


@pytest.mark.parametrize(
    ("key", "args", "why"),
    [
        ("incoming/x.cram", ("-C",), "CRAM"),
        ("incoming/x.bam", ("-C", "-r", "s3://ref/regions.bed"), "-r reads"),
    ],
)
def test_what_cannot_be_split_goes_as_one_job_with_the_reason(
    key: str, args: tuple[str, ...], why: str
) -> None:
    ctx = replace(CTX, pipeline=PipelineOptions(alignstats_args=args, reference_fasta="s3://ref/r.fa"))
    plan = plan_run(obj(key), ctx)
    assert isinstance(plan, Plan) and plan.shards == 0 and why in plan.fanout_declined
    assert "shard" not in [j.step for j in plan.jobs]


def test_the_shard_count_is_bounded_and_zero_turns_fan_out_off() -> None:
    opts = PipelineOptions()
    assert fanout_decision("a.bam", 10_000 * GB, opts, FAN) == (FAN.max_shards, "")
    assert fanout_decision("a.bam", 90 * GB, opts, replace(FAN, target_shard_seconds=10_000)) == (2, "")
    assert fanout_decision("a.bam", 10_000 * GB, opts, replace(FAN, min_projected_seconds=0)) == (0, "")


def test_parts_of_other_options_never_share_names() -> None:
    assert parts_digest(["-C", "-i", "x"], 8) != parts_digest(["-C", "-q", "20", "-i", "x"], 8)
    assert parts_digest(["-C", "-i", "x"], 8) != parts_digest(["-C", "-i", "x"], 9)


def test_the_spec_keeps_its_array_through_the_ledger() -> None:
    plan = plan_run(obj(), CTX)
    assert isinstance(plan, Plan)
    spec = plan.jobs[0]
    assert JobSpec.from_json(spec.to_json()) == spec


def _layout(mapped: list[int], unplaced: int = 0):
    from controller.index_layout import IndexLayout
    from worker.engine.bamindex import BamIndex, ContigSpan

    spans = tuple(ContigSpan(t, t * 10, t * 10 + 10, m, 0) if m else None for t, m in enumerate(mapped))
    return IndexLayout("incoming/x.bam.bai", BamIndex(spans, len(mapped) * 10, unplaced))


def test_the_index_caps_the_array_at_the_groups_that_read_anything() -> None:
    opts = PipelineOptions()
    four = _layout([500, 450, 400, 0, 350], unplaced=10)  # four contigs with records, '*' rides along
    assert fanout_decision("a.bam", 100 * GB, opts, FAN, four) == (4, "")
    # chr1 alone bounds the plan: 200 and 300 share a child, as no second child would end sooner
    assert fanout_decision("a.bam", 100 * GB, opts, FAN, _layout([500, 300, 200])) == (2, "")
    human = _layout([100] * 25, unplaced=50)
    assert fanout_decision("a.bam", 100 * GB, opts, FAN, human) == (9, "")  # the size decides
    one = _layout([0, 900, 0], unplaced=5)
    shards, why = fanout_decision("a.bam", 100 * GB, opts, FAN, one)
    assert shards == 0 and "incoming/x.bam.bai places every record on one contig" in why


def test_a_plan_with_the_index_in_hand_has_no_empty_children() -> None:
    from controller.planner import admit, build_plan

    admission = admit(obj(), CTX.inbox)
    assert not isinstance(admission, Exception)
    plan = build_plan(replace(admission, index_layout=_layout([500, 450, 400, 350])), CTX)
    assert isinstance(plan, Plan) and plan.shards == 4
    assert plan.jobs[0].array_size == 4 and plan.jobs[0].command[-3] == "4"
