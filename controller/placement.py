"""Where a step runs (pure): the job queue for its next attempt, from how often Spot took its host away.

Batch reports a Spot reclaim (or a retired instance) as a FAILED attempt whose statusReason starts with
`Host EC2` ("Host EC2 (instance i-0abc) terminated."). The job definitions EXIT on that reason instead of
retrying (deploy/cloudformation/batch.yaml), so the controller decides: the step is submitted again, on
the first queue of `[batch] job_queue` + `fallback_queues` whose share of reclaims is not used up. With the
default order (Spot-first queue, then the On-Demand one) and `reclaims_before_fallback = 2`, attempts 1-2
go to Spot and the third to On-Demand, where a reclaim cannot happen again (an instance retirement still
can, up to `max_reclaims`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

RECLAIM_PREFIX = "Host EC2"


class Capacity(StrEnum):
    """What kind of capacity ran an attempt: it decides the price (controller.cost)."""

    SPOT = "spot"
    ON_DEMAND = "on_demand"
    LOCAL = "local"  # a local process (`run --local`): no bill


def capacity_of(compute_resources_type: str | None) -> Capacity | None:
    """A Batch compute environment's `computeResources.type` as a Capacity (None when unmanaged)."""
    kind = (compute_resources_type or "").upper()
    if kind in ("SPOT", "FARGATE_SPOT"):
        return Capacity.SPOT
    if kind in ("EC2", "FARGATE"):
        return Capacity.ON_DEMAND
    return None


def is_reclaim(reason: str | None) -> bool:
    """A status reason Batch gives when the instance under a job went away (Spot reclaim, retirement)."""
    return bool(reason) and str(reason).startswith(RECLAIM_PREFIX)


@dataclass(frozen=True)
class QueuePolicy:
    """The queues a step may run on, in order, and how many reclaims each queue gets."""

    queues: tuple[str, ...]
    reclaims_before_fallback: int = 2  # 0: never fall back (every attempt on the first queue)
    max_reclaims: int = 6  # after this many reclaims of one step, its run fails

    def __post_init__(self) -> None:
        if not self.queues:
            raise ValueError("QueuePolicy needs at least one queue")

    def queue_for(self, reclaims: int) -> str:
        """The queue of the attempt after `reclaims` reclaims of the same step."""
        if self.reclaims_before_fallback <= 0:
            return self.queues[0]
        index = min(reclaims // self.reclaims_before_fallback, len(self.queues) - 1)
        return self.queues[index]

    def reattempt(self, reclaims_so_far: int, reason: str | None) -> bool:
        """True when a step that just failed with `reason`, reclaimed `reclaims_so_far` times before,
        is submitted again (on `queue_for(reclaims_so_far + 1)`) instead of failing its run."""
        return is_reclaim(reason) and reclaims_so_far + 1 <= self.max_reclaims


def local_policy() -> QueuePolicy:
    """Local processes have no queues and no reclaims: the executor's own (""), never a reattempt."""
    return QueuePolicy(queues=("",), reclaims_before_fallback=0, max_reclaims=0)
