"""The one interface every executor implements, and the typed records it exchanges.

An executor knows nothing about runs, the ledger or S3 events: it submits a fully rendered job (command,
dependencies as executor job ids, resources, tags), reports job states, finds a job by its deterministic
name (to resolve a submission intent after a crash) and cancels jobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SubmitRequest:
    name: str
    step: str
    command: tuple[str, ...]
    depends_on: tuple[str, ...]  # executor job ids of upstream jobs still running or pending
    vcpus: int
    memory_mib: int
    timeout_seconds: int
    tags: Mapping[str, str] = field(default_factory=dict)
    queue: str = ""  # the job queue (controller.placement); empty: the executor's default
    share: str = ""  # fair-share identifier (the object's project); sent when the executor uses fair share
    # > 0: an array job of this many children (child i's id is `<id>:<i>`). `n_to_n`: each child depends
    # on child i of every job in `depends_on` (arrays of the same size: a backfill's steps); otherwise on
    # the whole of each (a shard array after one index job).
    array_size: int = 0
    n_to_n: bool = True
    # > 0: the executor retries a failed child (or job) alone, up to this many attempts in all, except
    # on the exit codes that say another attempt cannot help (core.exitcodes: usage, bad input, ...).
    retry_attempts: int = 0


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    name: str
    state: str  # a Batch state (controller.states.JobState): SUBMITTED ... RUNNING, SUCCEEDED, FAILED
    exit_code: int | None = None
    reason: str | None = None
    log_stream: str | None = None
    created_at: float | None = None  # epoch seconds
    started_at: float | None = None
    stopped_at: float | None = None
    # Where the (last) attempt ran, when the executor can tell: a compute environment name and its
    # capacity (controller.placement.Capacity: spot, on_demand, local).
    compute_environment: str | None = None
    capacity: str | None = None


@dataclass(frozen=True)
class FoundJob:
    """A job found in the executor by listing it (rebuilding a lost ledger): its state, the command it
    runs and its tags (`alignbatch:run-id`, `alignbatch:step`, ...)."""

    status: JobStatus
    command: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)


class ExecutorError(RuntimeError):
    """A submission or lookup failed. `permanent`: the executor refused this request itself (bad
    parameters), so retrying it would fail forever; otherwise (throttling, 5xx, network after botocore's
    retries) the caller keeps the intent and tries again later."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Executor(Protocol):
    """What the controller relies on, every capability declared (no probing for optional attributes)."""

    kind: str
    # How long a submitted job may be absent from describe() before it counts as missing (DescribeJobs
    # can lag SubmitJob).
    missing_grace_seconds: float
    # A job the executor does not know (any more): True, submit it again (a restarted local executor
    # forgot it); False, resolve it by its outputs or mark it LOST (Batch forgets finished jobs).
    requeue_missing: bool
    # On SIGTERM, keep submitting: True when close(wait=True) runs jobs to the end anyway, so their
    # downstream jobs must be submitted too (local); False when submission can resume after a restart.
    submits_while_stopping: bool
    # Backfill arrays: True when runs may share array jobs, N_TO_N between steps (Batch); False, every
    # run's jobs are submitted on their own (local). Every executor takes a shard array (not N_TO_N).
    supports_arrays: bool

    def submit(self, request: SubmitRequest) -> str:
        """Submit a job; returns its id. Raises ExecutorError when the executor refused or is unreachable."""
        ...

    def describe(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """States of the given jobs; ids the executor no longer knows are absent from the result."""
        ...

    def find_by_name(self, name: str) -> JobStatus | None:
        """A job submitted earlier under this exact name, if the executor still knows it."""
        ...

    def cancel(self, job_ids: Iterable[str], reason: str) -> None: ...

    def discover(self, name_pattern: str) -> list[FoundJob]:
        """Every job the executor still knows whose name matches the regular expression (any state),
        with its command and tags: a ledger rebuilt after the host was lost adopts them, never
        resubmits them. Local processes die with the host: [] there."""
        ...

    def active_count(self) -> int:
        """Jobs this executor is still running or waiting to run (local: in this process)."""
        ...

    def close(self, *, wait: bool) -> None: ...
