"""Pure planning: one inbox object → a small job DAG (index when missing → alignstats → summary).

Planning returns a Plan or a Rejection (with its reason), never raises for a bad object. It is two pure
steps so that intake can probe for an index between them without validating twice: `admit` checks the
key once and names the run (the inbox's key rules); `build_plan` makes the jobs. `plan_run` is both.
Nothing here does I/O: whether an index already exists is decided by the caller and passed in. Every
name is deterministic (derived from the object's identity), so a duplicate event, a restart or a crash
between "intent" and "submitted" always lands on the same run id and the same Batch job names.

Results layout (COMMON §6), under the results root (s3://results/prefix or DIR/results):
    reports/<inbox key>.alignstats.json   the alignstats report
    indexes/<inbox key>.bai|.crai         an index made by the index step
    parts/<inbox key>/<digest>/part-<i>-of-<n>.json
                                          a large file's shard parts (#17), merged into the report
    rows/<run_id>.json                    the summary row of one run
    table/results.csv, table/results.jsonl (written by the controller, not by jobs)
`<inbox key>` is the object key with the configured inbox prefix removed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from controller.config import FanoutConfig, PipelineOptions, Tier
from controller.inbox import Inbox, inbox_at
from controller.index_layout import IndexLayout
from controller.model import (
    InputObject,
    JobSpec,
    Plan,
    Rejection,
    Step,
    job_name,
    run_id_for,
    sample_name,
    tag_value,
    version_stem,
)
from core import rows
from core.command import JobRef, WorkerCommand
from core.locations import LocationError, parse_location


class PlanError(ValueError):
    """Why an object cannot be planned (one line, names the fix); becomes the Rejection's reason."""


@dataclass(frozen=True)
class PlanContext:
    inbox_root: str  # s3://bucket/prefix or a local directory
    results_root: str
    pipeline: PipelineOptions  # already chosen for the key's prefix, paths resolved to URIs
    tiers: Sequence[Tier]
    pipeline_version: str
    index_vcpus: int = 1
    index_memory_mib: int = 2048
    summary_vcpus: int = 1
    summary_memory_mib: int = 512
    summary_timeout_seconds: int = 900
    deployment: str = ""  # [batch] deployment: the alignbatch:deployment tag of every job ("" = none)
    share: str = ""  # the object's fair-share project ([fair_share]): shareIdentifier and a cost tag
    fanout: FanoutConfig = field(default_factory=lambda: FanoutConfig(min_projected_seconds=0))
    # The inbox's key rules; the controller passes its own, a bare root gets the rules its form names.
    inbox: Inbox = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.inbox is None:
            object.__setattr__(self, "inbox", inbox_at(self.inbox_root))


@dataclass(frozen=True)
class Admission:
    """An object whose key is safe, with its run's names (the half of planning before the index probe)."""

    obj: InputObject
    run_id: str
    sample: str
    inbox_key: str
    input_uri: str
    # the object's index as read at planning (an index next to it, for a fan-out candidate): caps the
    # shard array at the groups that read anything; None = the size alone decides
    index_layout: IndexLayout | None = None

    def reject(self, reason: str) -> Rejection:
        return Rejection(self.run_id, self.sample, self.input_uri, self.obj.key, reason)


def admit(obj: InputObject, inbox: Inbox) -> Admission | Rejection:
    """Validate the key (once) and name the run; an unsafe key is rejected before any I/O with it."""
    run_id = run_id_for(obj.bucket, obj.key, obj.identity_version)
    sample = sample_name(obj.key)
    problem = inbox.validate_key(obj.key)
    reason = f"{obj.key!r}: {problem}" if problem else ""
    try:
        input_uri = inbox.object_uri(obj.bucket, obj.key, version_id=obj.version_id, etag=obj.etag)
    except LocationError as exc:
        reason = reason or str(exc)
        input_uri = f"{obj.bucket}/{obj.key}"
    if reason:
        return Rejection(run_id, sample, input_uri, obj.key, reason)
    return Admission(obj, run_id, sample, inbox.inbox_key(obj.key), input_uri)


def tier_for(size: int, tiers: Sequence[Tier]) -> Tier:
    for tier in tiers:
        if tier.max_bytes == 0 or size <= tier.max_bytes:
            return tier
    return tiers[-1]


def index_suffix(key: str) -> str:
    return ".crai" if key.lower().endswith(".cram") else ".bai"


def index_candidates(key: str) -> tuple[str, ...]:
    """Keys where an index next to the object may live (what the worker/htslib would pick up)."""
    if key.lower().endswith(".cram"):
        return (key + ".crai", key[:-5] + ".crai")
    return (key + ".bai", key[:-4] + ".bai", key + ".csi", key[:-4] + ".csi")


def fanout_decision(
    key: str, size: int, opts: PipelineOptions, fanout: FanoutConfig, layout: IndexLayout | None = None
) -> tuple[int, str]:
    """How many shards an object is split into (0: one job) and, when it is big enough but cannot be
    split, why (pure). Projected time: size over the engine's one-core rate ([fanout]); with the index
    (`layout`), no more shards than groups with records to read."""
    if fanout.min_projected_seconds <= 0:
        return 0, ""
    projected = size / fanout.bytes_per_second
    if projected < fanout.min_projected_seconds:
        return 0, ""
    if key.lower().endswith(".cram"):
        return 0, "a CRAM goes as one job: shards read contigs through a BAM index (.bai)"
    args = opts.alignstats_args
    if any(a.startswith("-r") for a in args):
        return 0, "-r reads records region by region, not contig by contig"
    shards = max(2, min(fanout.max_shards, math.ceil(projected / fanout.target_shard_seconds)))
    if layout is not None:
        useful = layout.useful_shards(shards)
        if useful < 2:
            return 0, (
                f"its index {layout.key} places every record on one contig (or none): shards split a BAM "
                "by contig"
            )
        shards = useful
    return shards, ""


def parts_digest(stats_args: Sequence[str], shards: int) -> str:
    """Names one fan-out's parts: the same options and shard count give the same names (a retried run's
    children find the parts already written and skip), different ones never mix with them."""
    text = "\0".join([str(shards), *stats_args])
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def part_uris(prefix: str, shards: int) -> tuple[str, ...]:
    """Where child i of a shard array writes its part (worker: `--part-out PREFIX`)."""
    return tuple(f"{prefix}part-{i}-of-{shards}.json" for i in range(shards))


def _join(root: str, rel: str) -> str:
    try:
        return str(parse_location(root, allow_prefix=True).join(rel))
    except LocationError as exc:
        raise PlanError(str(exc)) from None


def plan_run(obj: InputObject, ctx: PlanContext, *, attempt: int = 1) -> Plan | Rejection:
    """The job DAG for one object, or why there is none (pure)."""
    admission = admit(obj, ctx.inbox)
    if isinstance(admission, Rejection):
        return admission
    return build_plan(admission, ctx, attempt=attempt)


def build_plan(admission: Admission, ctx: PlanContext, *, attempt: int = 1) -> Plan | Rejection:
    """The jobs for an admitted object (its `index_present` already decided by the caller)."""
    try:
        return _build(admission, ctx, attempt)
    except PlanError as exc:
        return admission.reject(str(exc))


def _build(admission: Admission, ctx: PlanContext, attempt: int) -> Plan:
    obj = admission.obj
    is_cram = obj.key.lower().endswith(".cram")
    opts = ctx.pipeline
    if is_cram and not opts.reference_fasta:
        raise PlanError(f"{obj.key!r}: CRAM input needs a reference; set [pipeline] reference_fasta")

    run_id, sample = admission.run_id, admission.sample
    inbox_key, input_uri = admission.inbox_key, admission.input_uri
    stem = version_stem(inbox_key, obj.version_id)  # each object version its own report and index
    report_uri = _join(ctx.results_root, f"reports/{stem}.alignstats.json")
    row_uri = _join(ctx.results_root, f"rows/{run_id}.json")
    tier = tier_for(obj.size, ctx.tiers)

    def tags(step: Step) -> dict[str, str]:
        # Tag values: up to 256 chars; keep the sample readable but bounded. Propagated to the ECS task,
        # these are what AWS split cost allocation data groups a job's cost by (activate them as cost
        # allocation tags): per sample, run, step, pipeline version and project.
        out = {
            "alignbatch:sample": tag_value(sample),
            "alignbatch:run-id": run_id,
            "alignbatch:step": str(step),
            "alignbatch:pipeline-version": ctx.pipeline_version,
        }
        if ctx.deployment:  # which deployment submitted it: its controller role may stop only its own jobs
            out["alignbatch:deployment"] = ctx.deployment
        if ctx.share:
            out["alignbatch:project"] = ctx.share
        return out

    jobs: list[JobSpec] = []
    index_uri: str | None = None
    worker_index: str | None = None
    if not obj.index_present:
        index_uri = _join(ctx.results_root, f"indexes/{stem}{index_suffix(obj.key)}")
        index_args = ["-i", input_uri]
        if is_cram:
            index_args += ["-T", opts.reference_fasta]
        index_args += ["-o", index_uri]
        jobs.append(
            JobSpec(
                step=Step.INDEX,
                name=job_name(sample, run_id, Step.INDEX, attempt),
                worker=WorkerCommand("alignbatch-index", tuple(index_args)),
                depends_on=(),
                vcpus=ctx.index_vcpus,
                memory_mib=ctx.index_memory_mib,
                timeout_seconds=tier.timeout_seconds,
                tags=tags(Step.INDEX),
                outputs=(index_uri,),
                share=ctx.share,
            )
        )
        worker_index = index_uri

    stats_args = [*opts.alignstats_args, "-i", input_uri]
    if opts.target_bed:
        stats_args += ["-t", opts.target_bed]
    if opts.reference_fasta:
        stats_args += ["-T", opts.reference_fasta]
    shards, declined = fanout_decision(obj.key, obj.size, opts, ctx.fanout, admission.index_layout)
    if shards:
        # Shard array → merge: the alignstats step renders the report from the children's parts.
        prefix = _join(ctx.results_root, f"parts/{stem}/{parts_digest(stats_args, shards)}") + "/"
        parts = part_uris(prefix, shards)
        fan = ctx.fanout
        jobs.append(
            JobSpec(
                step=Step.SHARD,
                name=job_name(sample, run_id, Step.SHARD, attempt),
                worker=WorkerCommand(
                    "alignstats",
                    (*stats_args, "--shard-of", str(shards), "--part-out", prefix),
                    index=worker_index,
                ),
                depends_on=(Step.INDEX,) if index_uri else (),
                vcpus=fan.shard_vcpus,
                memory_mib=fan.shard_memory_mib,
                timeout_seconds=fan.shard_timeout_seconds,
                tags=tags(Step.SHARD),
                outputs=parts,
                share=ctx.share,
                array_size=shards,
                retry_attempts=fan.child_attempts,
            )
        )
        # The merge reads only the parts (the run's options are inside them), not the input.
        stats = WorkerCommand("alignstats", ("--merge-parts", "-o", report_uri, *parts))
        stats_after: tuple[Step, ...] = (Step.SHARD,)
        vcpus, memory, timeout = fan.merge_vcpus, fan.merge_memory_mib, ctx.summary_timeout_seconds
    else:
        stats = WorkerCommand("alignstats", (*stats_args, "-o", report_uri), index=worker_index)
        stats_after = (Step.INDEX,) if index_uri else ()
        vcpus, memory, timeout = tier.vcpus, tier.memory_mib, tier.timeout_seconds
    jobs.append(
        JobSpec(
            step=Step.ALIGNSTATS,
            name=job_name(sample, run_id, Step.ALIGNSTATS, attempt),
            worker=stats,
            depends_on=stats_after,
            vcpus=vcpus,
            memory_mib=memory,
            timeout_seconds=timeout,
            tags=tags(Step.ALIGNSTATS),
            outputs=(report_uri,),
            share=ctx.share,
        )
    )

    # The row's planner fields (core.rows has the schema and their order).
    index_fields: dict[str, str | JobRef] = (
        {"job_id_index": JobRef(Step.INDEX), "index_uri": index_uri} if index_uri else {}
    )
    if shards:
        index_fields["job_id_shard"] = JobRef(Step.SHARD)
    meta: dict[str, str | JobRef] = rows.planner_meta(
        run_id=run_id,
        sample=sample,
        inbox_key=inbox_key,
        input_uri=input_uri,
        input_etag=obj.etag,
        input_version_id=obj.version_id or "",
        input_size=str(obj.size),
        report_uri=report_uri,
        pipeline_version=ctx.pipeline_version,
        alignstats_args=" ".join(opts.alignstats_args),
        target_bed=opts.target_bed,
        reference_fasta=opts.reference_fasta,
        event_time=obj.event_time.isoformat() if obj.event_time else "",
        s3_sequencer=obj.sequencer or "",
        shards=str(shards or 1),
        job_id_alignstats=JobRef(Step.ALIGNSTATS),
        **index_fields,
    )
    summary_args: list[str | JobRef] = ["--report", report_uri, "--output", row_uri]
    for k, v in meta.items():
        # An upstream job id is a typed part, so no text in a key or path can ever be taken for one.
        summary_args += ["--meta", JobRef(v.step, f"{k}=") if isinstance(v, JobRef) else f"{k}={v}"]
    jobs.append(
        JobSpec(
            step=Step.SUMMARY,
            name=job_name(sample, run_id, Step.SUMMARY, attempt),
            worker=WorkerCommand("alignbatch-summary", tuple(summary_args)),
            depends_on=(Step.ALIGNSTATS,),
            vcpus=ctx.summary_vcpus,
            memory_mib=ctx.summary_memory_mib,
            timeout_seconds=ctx.summary_timeout_seconds,
            tags=tags(Step.SUMMARY),
            outputs=(row_uri,),
            share=ctx.share,
        )
    )
    return Plan(
        run_id=run_id,
        sample=sample,
        input_uri=input_uri,
        inbox_key=inbox_key,
        report_uri=report_uri,
        row_uri=row_uri,
        index_uri=index_uri,
        jobs=tuple(jobs),
        shards=shards,
        fanout_declined=declined,
    )


def resolve_path(value: str, *, reference_root: str = "") -> str:
    """A config path for a BED/FASTA: URIs and absolute paths as given; a bare key goes under the
    reference bucket (AWS) when one is configured."""
    if not value or "://" in value or value.startswith("/") or not reference_root:
        return value
    return _join(reference_root, value)
