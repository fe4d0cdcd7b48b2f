"""Job and run states, and the one table of transitions between them that the ledger enforces.

Values are the strings the ledger has always stored and the logs and metrics print (StrEnum), so a ledger
written before these enums existed reads the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum


class JobState(StrEnum):
    # Our bookkeeping before the executor knows the job (two-phase submit: PLANNED -> INTENT -> SUBMITTED).
    PLANNED = "PLANNED"
    INTENT = "INTENT"
    # Batch's own states (the local executor reports the same ones).
    SUBMITTED = "SUBMITTED"
    PENDING = "PENDING"
    RUNNABLE = "RUNNABLE"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    # Ours again: the executor forgot the job and its outputs are missing; or we stopped it.
    LOST = "LOST"
    CANCELLED = "CANCELLED"


class RunState(StrEnum):
    ACTIVE = "active"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"  # recorded already final: the object cannot be planned (reason says why)


UNSUBMITTED: tuple[JobState, ...] = (JobState.PLANNED, JobState.INTENT)
BATCH_ACTIVE: tuple[JobState, ...] = (
    JobState.SUBMITTED,
    JobState.PENDING,
    JobState.RUNNABLE,
    JobState.STARTING,
    JobState.RUNNING,
)
JOB_TERMINAL: tuple[JobState, ...] = (JobState.SUCCEEDED, JobState.FAILED, JobState.LOST, JobState.CANCELLED)
JOB_BAD: tuple[JobState, ...] = (JobState.FAILED, JobState.LOST)
# An upstream job in one of these will never succeed: its dependants are not submitted.
JOB_DEAD: tuple[JobState, ...] = (JobState.FAILED, JobState.LOST, JobState.CANCELLED)

# Every allowed move, from -> to. Batch may report an active job in any active state again (a retry
# attempt goes back to RUNNABLE), so active states move freely among themselves. PLANNED is reachable from
# active states (the executor forgot the job: submit it again) and from unsuccessful final states (retry).
# A SUCCEEDED job never changes: retries reuse it.
JOB_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.PLANNED: frozenset(
        {JobState.PLANNED, JobState.INTENT, JobState.SUBMITTED, JobState.FAILED, JobState.CANCELLED}
    ),
    JobState.INTENT: frozenset({JobState.PLANNED, JobState.SUBMITTED, JobState.FAILED, JobState.CANCELLED}),
    **{active: frozenset({*BATCH_ACTIVE, *JOB_TERMINAL, JobState.PLANNED}) for active in BATCH_ACTIVE},
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset({JobState.PLANNED}),
    JobState.LOST: frozenset({JobState.PLANNED}),
    JobState.CANCELLED: frozenset({JobState.PLANNED}),
}

RUN_TRANSITIONS: Mapping[RunState, frozenset[RunState]] = {
    # REJECTED from ACTIVE: a check before the first submission found the run cannot be right (a CRAM
    # whose @SQ M5 values its reference does not have: controller.references).
    RunState.ACTIVE: frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.REJECTED}),
    RunState.SUCCEEDED: frozenset(),
    RunState.FAILED: frozenset({RunState.ACTIVE}),  # retry
    RunState.CANCELLED: frozenset({RunState.ACTIVE}),  # retry
    RunState.REJECTED: frozenset(),
}


def job_move_allowed(old: str, new: str) -> bool:
    """The transition table's answer; an unknown state (a newer executor's) is never allowed to move."""
    try:
        return JobState(new) in JOB_TRANSITIONS[JobState(old)]
    except ValueError:
        return False


def run_move_allowed(old: str, new: str) -> bool:
    try:
        return RunState(new) in RUN_TRANSITIONS[RunState(old)]
    except ValueError:
        return False


def job_sources(new: JobState, among: Iterable[JobState] | None = None) -> tuple[JobState, ...]:
    """States a job may move to `new` from (optionally narrowed to `among`), for SQL `state IN (...)`."""
    candidates = JobState if among is None else among
    return tuple(s for s in candidates if new in JOB_TRANSITIONS[s])


# How far along a job is, for state-change events, which may arrive twice or out of order: an event moves
# a job only forward (a final state is final anyway). A Batch retry's RUNNING → RUNNABLE is therefore left
# to reconcile's DescribeJobs sweep, which applies the table above as it is.
JOB_PROGRESS: Mapping[JobState, int] = {
    JobState.PLANNED: 0, JobState.INTENT: 1, JobState.SUBMITTED: 2, JobState.PENDING: 3,
    JobState.RUNNABLE: 4, JobState.STARTING: 5, JobState.RUNNING: 6,
    **{final: 7 for final in JOB_TERMINAL},
}  # fmt: skip


def job_event_allowed(old: str, new: str) -> bool:
    """A state-change event may move a job: the table allows it and it is not a step backwards."""
    if not job_move_allowed(old, new):
        return False
    return JOB_PROGRESS[JobState(new)] > JOB_PROGRESS[JobState(old)]
