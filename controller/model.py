"""The typed records that travel from intake through the ledger to submission: the input object, a run's
plan (its jobs and their dependencies) or the rejection of an object, and the deterministic names.

No I/O and no logic beyond naming and ordering: the planner makes these, the ledger stores them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from core.command import WorkerCommand


class Step(StrEnum):
    INDEX = "index"
    # A large file's shard array (#17): every child one group of contigs into a part file; the
    # alignstats step then merges the parts into the report instead of reading the input.
    SHARD = "shard"
    ALIGNSTATS = "alignstats"
    SUMMARY = "summary"


STEPS: tuple[Step, ...] = tuple(Step)

# Batch job names: up to 128 letters, digits, hyphens and underscores, starting alphanumeric.
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
# AWS tag values: unicode letters and digits, spaces and _ . : / = + - @ (no '%', '#', ',' ...), ≤ 256.
_TAG_UNSAFE = re.compile(r"[^\w .:/=+\-@]")


@dataclass(frozen=True)
class InputObject:
    """The object a run is for: identity (bucket, key, version) plus what planning needs to know."""

    bucket: str  # the S3 bucket, or the local inbox directory
    key: str  # full object key (local: path relative to the inbox directory)
    size: int
    etag: str
    version_id: str | None
    index_present: bool = False  # an index exists next to the object (or an index event was recorded)
    event_time: datetime | None = None
    # S3's event sequencer (hex): orders the events of one key where eventTime cannot (same millisecond,
    # or a listed object); None for local inboxes and listings
    sequencer: str | None = None

    @property
    def identity_version(self) -> str:
        return self.version_id or self.etag


@dataclass(frozen=True)
class JobSpec:
    step: Step
    name: str
    worker: WorkerCommand  # upstream job ids are JobRef parts, filled in at submit time
    depends_on: tuple[Step, ...]
    vcpus: int
    memory_mib: int
    timeout_seconds: int
    tags: Mapping[str, str] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    share: str = ""  # the fair-share identifier of the object's project ([fair_share]); "" = none
    # > 0: one array job of this many children running the same command, each finding its share from
    # AWS_BATCH_JOB_ARRAY_INDEX; the jobs after it wait for all of them (the shard step).
    array_size: int = 0
    # > 0: Batch retries a failed child alone up to this many attempts (SubmitJob's retryStrategy);
    # 0: the job definition's strategy, under which the controller handles reclaims itself.
    retry_attempts: int = 0

    @property
    def command(self) -> tuple[str, ...]:
        """The argv as planned, upstream job ids still blank (submission renders `worker.argv(ids)`)."""
        return self.worker.argv()

    def to_json(self) -> str:
        data = {
            "step": str(self.step),
            "name": self.name,
            "command": self.worker.to_json(),
            "depends_on": [str(d) for d in self.depends_on],
            "vcpus": self.vcpus,
            "memory_mib": self.memory_mib,
            "timeout_seconds": self.timeout_seconds,
            "tags": dict(self.tags),
            "outputs": list(self.outputs),
        }
        if self.share:
            data["share"] = self.share
        if self.array_size:
            data["array_size"] = self.array_size
        if self.retry_attempts:
            data["retry_attempts"] = self.retry_attempts
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        """Also reads specs written before the typed command (a list of strings with job-id tokens)."""
        data: dict[str, Any] = json.loads(text)
        return cls(
            step=Step(data["step"]),
            name=data["name"],
            worker=WorkerCommand.from_json(data["command"]),
            depends_on=tuple(Step(d) for d in data["depends_on"]),
            vcpus=int(data["vcpus"]),
            memory_mib=int(data["memory_mib"]),
            timeout_seconds=int(data["timeout_seconds"]),
            tags=dict(data.get("tags") or {}),
            outputs=tuple(data.get("outputs") or ()),
            share=str(data.get("share") or ""),
            array_size=int(data.get("array_size") or 0),
            retry_attempts=int(data.get("retry_attempts") or 0),
        )


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
    # Fan-out (#17): how many shards the object is split into (0: one job), and when an object big enough
    # to split is not, why (logged at intake so an operator sees the reason).
    shards: int = 0
    fanout_declined: str = ""

    def job(self, step: str) -> JobSpec | None:
        return next((j for j in self.jobs if j.step == step), None)


@dataclass(frozen=True)
class Rejection:
    """An object that cannot be planned: recorded as a final `rejected` run so operators see why."""

    run_id: str
    sample: str
    input_uri: str
    inbox_key: str
    reason: str  # one line that names the fix


def submission_order(specs: Iterable[Any]) -> list[Any]:
    """`specs` (anything with `.step` and `.depends_on`) so that every job follows its upstream jobs.
    Kahn's algorithm, ties in STEPS order, so the order is the same on every pass. A dependency on a step
    that is not in `specs` (an index already present) is not waited for."""
    pending = {s.step: s for s in specs}
    rank = {step: i for i, step in enumerate(STEPS)}
    out: list[Any] = []
    placed: set[str] = set()
    while pending:
        ready = [s for s in pending.values() if all(d in placed or d not in pending for d in s.depends_on)]
        if not ready:
            raise ValueError(f"dependency cycle among steps {sorted(pending)}")
        ready.sort(key=lambda s: rank.get(s.step, len(rank)))
        for s in ready:
            out.append(s)
            placed.add(s.step)
            del pending[s.step]
    return out


def version_stem(inbox_key: str, version_id: str | None) -> str:
    """The results name of one object version (#14): `<inbox key>@<versionId>` for an object of a
    versioned bucket, so each version keeps its own report and index (the row is per run already); the
    bare inbox key when the event named no version (an unversioned bucket: an overwrite replaces the
    object, and its run the report)."""
    return f"{inbox_key}@{version_id}" if version_id else inbox_key


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


def job_name(sample: str, run_id: str, step: str, attempt: int = 1, replan: int = 0) -> str:
    """`<sample>-<run id>-<step>-a<attempt>`; `-r<n>` when the step was planned again within the same
    attempt (a Spot reclaim, or an upstream's: controller.placement), so every submission has its own
    name and a submission intent is always resolved to the right Batch job."""
    slug = _NAME_UNSAFE.sub("-", sample).strip("-_")[:60] or "sample"
    if not slug[0].isalnum():
        slug = "s" + slug
    suffix = f"-r{replan}" if replan else ""
    return f"{slug}-{run_id}-{step}-a{attempt}{suffix}"[:128]


def tag_value(text: str) -> str:
    return _TAG_UNSAFE.sub("_", text)[:256]
