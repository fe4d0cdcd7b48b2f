"""Pure planning: one inbox object → a small job DAG (index when missing → alignstats → summary).

Nothing here does I/O: whether an index already exists is decided by the caller and passed in. Every
name is deterministic (derived from the object's identity), so a duplicate event, a restart or a crash
between "intent" and "submitted" always lands on the same run id and the same Batch job names.

Results layout (COMMON §6), under the results root (s3://results/prefix or DIR/results):
    reports/<inbox key>.alignstats.json   the alignstats report
    indexes/<inbox key>.bai|.crai         an index made by the index step
    rows/<run_id>.json                    the summary row of one run
    table/results.csv, table/results.jsonl (written by the controller, not by jobs)
`<inbox key>` is the object key with the configured inbox prefix removed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from controller.config import PipelineOptions, Tier
from core.locations import Location, LocationError, parse_location

Step = Literal["index", "alignstats", "summary"]
STEPS: tuple[Step, ...] = ("index", "alignstats", "summary")

# A job-id placeholder in a command, filled in by the executor at submit time (upstream jobs are always
# submitted first, so their ids are known): "{job_id:alignstats}".
JOB_ID_TOKEN = re.compile(r"\{job_id:(index|alignstats|summary)\}")

# Batch job names: up to 128 letters, digits, hyphens and underscores, starting alphanumeric.
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
# AWS tag values: unicode letters and digits, spaces and _ . : / = + - @ (no '%', '#', ',' ...), ≤ 256.
_TAG_UNSAFE = re.compile(r"[^\w .:/=+\-@]")


def tag_value(text: str) -> str:
    return _TAG_UNSAFE.sub("_", text)[:256]


MAX_S3_KEY_BYTES = 1024
MAX_LOCAL_NAME_BYTES = 255


class PlanError(ValueError):
    """The object cannot be planned (e.g. a CRAM without a configured reference); one line, names the fix."""


@dataclass(frozen=True)
class InputObject:
    """The object a run is for: identity (bucket, key, version) plus what planning needs to know."""

    bucket: str  # the S3 bucket, or the local inbox directory
    key: str  # full object key (local: path relative to the inbox directory)
    size: int
    etag: str
    version_id: str | None
    index_present: bool  # an index already exists next to the object (or an index event was recorded)
    event_time: datetime | None = None

    @property
    def identity_version(self) -> str:
        return self.version_id or self.etag


@dataclass(frozen=True)
class PlanContext:
    inbox_root: str  # s3://bucket/prefix or a local directory
    results_root: str
    pipeline: PipelineOptions  # already chosen for the key's prefix, paths resolved to URIs
    tiers: Sequence[Tier]
    pipeline_version: str
    local: bool = False
    index_vcpus: int = 1
    index_memory_mib: int = 2048
    summary_vcpus: int = 1
    summary_memory_mib: int = 512
    summary_timeout_seconds: int = 900


@dataclass(frozen=True)
class JobSpec:
    step: Step
    name: str
    command: tuple[str, ...]  # may contain {job_id:STEP} tokens; see render_command()
    depends_on: tuple[Step, ...]
    vcpus: int
    memory_mib: int
    timeout_seconds: int
    tags: Mapping[str, str] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    run_id: str
    sample: str
    input_uri: str
    inbox_key: str
    report_uri: str
    row_uri: str
    index_uri: str | None  # set when the plan makes an index
    jobs: tuple[JobSpec, ...]

    def job(self, step: str) -> JobSpec | None:
        return next((j for j in self.jobs if j.step == step), None)


def run_id_for(bucket: str, key: str, version: str) -> str:
    """Deterministic run id for an object identity (bucket, key, versionId or ETag)."""
    digest = hashlib.sha256(f"{bucket}\0{key}\0{version}".encode()).hexdigest()
    return "r" + digest[:16]


def sample_name(key: str) -> str:
    """`dir/NA12878.final.bam` → `NA12878.final`."""
    base = key.rsplit("/", 1)[-1]
    for suffix in (".bam", ".cram"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)] or base
    return base


def job_name(sample: str, run_id: str, step: str, attempt: int = 1) -> str:
    slug = _NAME_UNSAFE.sub("-", sample).strip("-_")[:60] or "sample"
    if not slug[0].isalnum():
        slug = "s" + slug
    return f"{slug}-{run_id}-{step}-a{attempt}"[:128]


def relative_key(key: str, inbox_root: str) -> str:
    """The inbox key: `key` without the inbox prefix (when it has it)."""
    root = parse_location(inbox_root, allow_prefix=True)
    prefix = root.key if root.is_s3 else ""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return key[len(prefix) :] if prefix and key.startswith(prefix) else key


def validate_key(key: str, *, local: bool) -> str | None:
    """Why a key cannot be processed safely, or None. Keys with '.'/'..'/empty segments would map
    outside (or ambiguously into) the results layout; over-long keys could not hold the report suffix."""
    segments = key.split("/")
    if any(seg in (".", "..") for seg in segments):
        return "key has a '.' or '..' path segment; rename the object without it"
    if any(seg == "" for seg in segments):
        return "key has an empty path segment ('//' or a leading/trailing '/'); rename the object"
    if len(("reports/" + key + ".alignstats.json").encode()) > MAX_S3_KEY_BYTES - 64:
        return "key is too long to hold the results layout (limit about 940 bytes); shorten it"
    if local and any(len(seg.encode()) > MAX_LOCAL_NAME_BYTES - 20 for seg in segments):
        return "a path component is too long for a local file name (limit 235 bytes); shorten it"
    return None


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


def _join(root: str, rel: str) -> str:
    try:
        return str(parse_location(root, allow_prefix=True).join(rel))
    except LocationError as exc:
        raise PlanError(str(exc)) from None


def object_uri(obj: InputObject, *, local: bool) -> str:
    if local:
        return _join(obj.bucket, obj.key)
    return str(Location.s3(obj.bucket, obj.key))


def plan_run(obj: InputObject, ctx: PlanContext, *, attempt: int = 1) -> Plan:
    """The job DAG for one object (pure)."""
    problem = validate_key(obj.key, local=ctx.local)
    if problem:
        raise PlanError(f"{obj.key!r}: {problem}")
    is_cram = obj.key.lower().endswith(".cram")
    opts = ctx.pipeline
    if is_cram and not opts.reference_fasta:
        raise PlanError(f"{obj.key!r}: CRAM input needs a reference; set [pipeline] reference_fasta")

    run_id = run_id_for(obj.bucket, obj.key, obj.identity_version)
    sample = sample_name(obj.key)
    inbox_key = relative_key(obj.key, ctx.inbox_root) if not ctx.local else obj.key
    input_uri = object_uri(obj, local=ctx.local)
    report_uri = _join(ctx.results_root, f"reports/{inbox_key}.alignstats.json")
    row_uri = _join(ctx.results_root, f"rows/{run_id}.json")
    tier = tier_for(obj.size, ctx.tiers)

    def tags(step: Step) -> dict[str, str]:
        # Tag values: up to 256 chars; keep the sample readable but bounded.
        return {
            "alignbatch:sample": tag_value(sample),
            "alignbatch:run-id": run_id,
            "alignbatch:step": step,
            "alignbatch:pipeline-version": ctx.pipeline_version,
        }

    jobs: list[JobSpec] = []
    index_uri: str | None = None
    worker_opts: list[str] = []
    if not obj.index_present:
        index_uri = _join(ctx.results_root, f"indexes/{inbox_key}{index_suffix(obj.key)}")
        index_cmd = ["alignbatch-worker", "--", "alignbatch-index", "-i", input_uri]
        if is_cram:
            index_cmd += ["-T", opts.reference_fasta]
        index_cmd += ["-o", index_uri]
        jobs.append(
            JobSpec(
                step="index",
                name=job_name(sample, run_id, "index", attempt),
                command=tuple(index_cmd),
                depends_on=(),
                vcpus=ctx.index_vcpus,
                memory_mib=ctx.index_memory_mib,
                timeout_seconds=tier.timeout_seconds,
                tags=tags("index"),
                outputs=(index_uri,),
            )
        )
        worker_opts = ["--index", index_uri]

    stats_cmd = [
        "alignbatch-worker",
        *worker_opts,
        "--",
        "alignstats",
        *opts.alignstats_args,
        "-i",
        input_uri,
    ]
    if opts.target_bed:
        stats_cmd += ["-t", opts.target_bed]
    if opts.reference_fasta:
        stats_cmd += ["-T", opts.reference_fasta]
    stats_cmd += ["-o", report_uri]
    jobs.append(
        JobSpec(
            step="alignstats",
            name=job_name(sample, run_id, "alignstats", attempt),
            command=tuple(stats_cmd),
            depends_on=("index",) if index_uri else (),
            vcpus=tier.vcpus,
            memory_mib=tier.memory_mib,
            timeout_seconds=tier.timeout_seconds,
            tags=tags("alignstats"),
            outputs=(report_uri,),
        )
    )

    meta = {
        "run_id": run_id,
        "sample": sample,
        "inbox_key": inbox_key,
        "input_uri": input_uri,
        "input_etag": obj.etag,
        "input_version_id": obj.version_id or "",
        "input_size": str(obj.size),
        "report_uri": report_uri,
        "pipeline_version": ctx.pipeline_version,
        "alignstats_args": " ".join(opts.alignstats_args),
        "target_bed": opts.target_bed,
        "reference_fasta": opts.reference_fasta,
        "event_time": obj.event_time.isoformat() if obj.event_time else "",
        "job_id_alignstats": "{job_id:alignstats}",
    }
    if index_uri:
        meta["job_id_index"] = "{job_id:index}"
        meta["index_uri"] = index_uri
    summary_cmd = [
        "alignbatch-worker",
        "--",
        "alignbatch-summary",
        "--report",
        report_uri,
        "--output",
        row_uri,
    ]
    for k, v in meta.items():
        summary_cmd += ["--meta", f"{k}={v}"]
    jobs.append(
        JobSpec(
            step="summary",
            name=job_name(sample, run_id, "summary", attempt),
            command=tuple(summary_cmd),
            depends_on=("alignstats",),
            vcpus=ctx.summary_vcpus,
            memory_mib=ctx.summary_memory_mib,
            timeout_seconds=ctx.summary_timeout_seconds,
            tags=tags("summary"),
            outputs=(row_uri,),
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
    )


def render_command(command: Sequence[str], job_ids: Mapping[str, str]) -> list[str]:
    """Fill {job_id:STEP} tokens with the upstream jobs' ids ('' for a step that was not run)."""
    return [JOB_ID_TOKEN.sub(lambda m: job_ids.get(m.group(1), ""), arg) for arg in command]


def resolve_path(value: str, *, reference_root: str = "") -> str:
    """A config path for a BED/FASTA: URIs and absolute paths as given; a bare key goes under the
    reference bucket (AWS) when one is configured."""
    if not value or "://" in value or value.startswith("/") or not reference_root:
        return value
    return _join(reference_root, value)
