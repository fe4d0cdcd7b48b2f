"""Which waiting runs can share array jobs (pure): the same steps, resources, timeout, project and queue,
nothing submitted yet, and no check that must run per object first (a CRAM's reference check).

An array job gives every child the same resources, queue, share and dependencies, so only runs that agree
on all of them are grouped; Batch numbers the children 0..n-1 and child i of a downstream array waits for
child i of its upstream (N_TO_N), so a run is child i of every step's array.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controller.ledger import JobRow
from controller.model import Step, submission_order
from controller.states import JobState

MAX_ARRAY_SIZE = 10_000  # Batch's limit on an array job's children
MIN_ARRAY_SIZE = 2  # Batch's lower limit: a single run goes as single jobs
# What array_name() makes, for finding our arrays in Batch (a ledger rebuilt: controller.recovery).
ARRAY_NAME_PATTERN = r"^array-[0-9a-f]{20}-(" + "|".join(Step) + r")$"


@dataclass(frozen=True)
class Group:
    """Runs that share one array job per step; `steps` in submission order."""

    steps: tuple[str, ...]
    run_ids: tuple[str, ...]


def shape_of(jobs: Sequence[JobRow]) -> tuple[object, ...] | None:
    """What must be equal for runs to share arrays; None when the run cannot join one."""
    if not jobs or any(j.state != JobState.PLANNED or j.array_name for j in jobs):
        return None
    if any(j.job_spec.array_size for j in jobs):
        return None  # a large file's shard array: Batch has no arrays of arrays
    key: list[object] = []
    specs = {job.step: job.job_spec for job in jobs}
    for job in _in_order(jobs, specs):
        spec = specs[job.step]
        if job.step == Step.ALIGNSTATS and _is_cram(spec.worker.tool_command()):
            return None  # the submit stage compares its @SQ M5 with the reference first, per object
        key.append((job.step, spec.vcpus, spec.memory_mib, spec.timeout_seconds, spec.depends_on, spec.share))
        key.append(job.reclaims > 0)  # a reclaimed step goes to another queue: keep it single
    return tuple(key)


def _in_order(jobs: Sequence[JobRow], specs: Mapping[str, object]) -> list[JobRow]:
    by_step = {j.step: j for j in jobs}
    return [by_step[s.step] for s in submission_order(specs.values())]


def _is_cram(args: Sequence[str]) -> bool:
    return "-i" in args and args[args.index("-i") + 1].split("?", 1)[0].lower().endswith(".cram")


def group_runs(
    runs: Mapping[str, Sequence[JobRow]], *, min_runs: int, max_size: int = MAX_ARRAY_SIZE
) -> list[Group]:
    """Groups of at least `min_runs` runs (and at least 2), each at most `max_size`; the runs left out go
    as single jobs. Runs keep the order they are given in (oldest first), so the oldest are sent first."""
    if min_runs <= 0:
        return []
    by_shape: dict[tuple[object, ...], list[str]] = {}
    steps: dict[tuple[object, ...], tuple[str, ...]] = {}
    for run_id, jobs in runs.items():
        shape = shape_of(jobs)
        if shape is None:
            continue
        by_shape.setdefault(shape, []).append(run_id)
        if shape not in steps:  # once per shape, not per run (setdefault would order every run's steps)
            steps[shape] = tuple(s.step for s in submission_order(j.job_spec for j in jobs))
    size = max(MIN_ARRAY_SIZE, min(max_size, MAX_ARRAY_SIZE))
    out = []
    for shape, run_ids in by_shape.items():
        if len(run_ids) < max(min_runs, MIN_ARRAY_SIZE):
            continue
        for i in range(0, len(run_ids), size):
            chunk = tuple(run_ids[i : i + size])
            if len(chunk) >= max(MIN_ARRAY_SIZE, min(min_runs, size)):  # a small remainder: single jobs
                out.append(Group(steps[shape], chunk))
    return out


def array_name(step: str, member_job_names: Sequence[str]) -> str:
    """Deterministic: the same members' same attempts give the same name, so a crash between the intent
    and SubmitJob is resolved by looking the name up (as a single job's is)."""
    digest = hashlib.sha256("\n".join([step, *member_job_names]).encode()).hexdigest()[:20]
    return f"array-{digest}-{step}"


def manifest_text(entries: Sequence[tuple[str, Sequence[str]]]) -> bytes:
    """JSON Lines, line i = child i's run id and full command (worker/array_task.py reads it)."""
    lines = [
        json.dumps({"run_id": run_id, "argv": list(argv)}, ensure_ascii=False) for run_id, argv in entries
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")
