"""What a run cost (pure): requested vCPUs and memory, times the time each attempt ran, times the price
of the capacity that ran it.

Batch bills instances, not jobs, so this is the job's share of an instance at list price: vCPU-seconds
and GiB-seconds requested (the container's reservation, what keeps other jobs off the instance), priced
per vCPU-hour and GiB-hour from `[cost]` (On-Demand or Spot by the compute environment that ran the
attempt: controller.placement.Capacity). Every attempt counts, a reclaimed or failed one too (the
instance ran it), from the job's startedAt to its stoppedAt; local processes cost nothing; an attempt
whose capacity is unknown is priced On-Demand, the upper bound. AWS split cost allocation data is the
bill's own per-job view (the jobs' tags are propagated to their ECS tasks for it), except for array
children, whose tags are the array's, not the run's (Batch does not propagate a job's tags to its
children); this is the estimate the controller can give the moment a run ends, and for a backfill the
only per-sample one. Where the default prices come from, and which are placeholders (Spot): the "Cost
per sample" section of docs/controller.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controller.config import CostConfig
from controller.placement import Capacity

MIB_PER_GIB = 1024.0


@dataclass(frozen=True)
class PriceTable:
    """USD per vCPU-hour and per GiB-hour of memory, On-Demand and Spot (`[cost]`)."""

    on_demand_vcpu_hour: float
    on_demand_gib_hour: float
    spot_vcpu_hour: float
    spot_gib_hour: float

    def rates(self, capacity: str | None) -> tuple[float, float]:
        if capacity == Capacity.LOCAL:
            return 0.0, 0.0
        if capacity == Capacity.SPOT:
            return self.spot_vcpu_hour, self.spot_gib_hour
        return self.on_demand_vcpu_hour, self.on_demand_gib_hour  # On-Demand, or unknown: the upper bound


def price_table(cfg: CostConfig) -> PriceTable:
    return PriceTable(cfg.on_demand_vcpu_hour, cfg.on_demand_gib_hour, cfg.spot_vcpu_hour, cfg.spot_gib_hour)


@dataclass(frozen=True)
class Attempt:
    """One attempt of one job: what it reserved, how long it ran, on what capacity."""

    vcpus: float
    memory_mib: float
    started_at: float | None
    stopped_at: float | None
    capacity: str | None

    @property
    def seconds(self) -> float:
        if self.started_at is None or self.stopped_at is None:
            return 0.0  # never started (cancelled while waiting): no instance time
        return max(0.0, self.stopped_at - self.started_at)


@dataclass(frozen=True)
class Cost:
    vcpu_seconds: float = 0.0
    memory_gib_seconds: float = 0.0
    est_cost_usd: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.vcpu_seconds + other.vcpu_seconds,
            self.memory_gib_seconds + other.memory_gib_seconds,
            self.est_cost_usd + other.est_cost_usd,
        )

    def columns(self) -> dict[str, float]:
        """The row's cost columns, rounded to what the numbers can mean."""
        return {
            "vcpu_seconds": round(self.vcpu_seconds, 3),
            "memory_gib_seconds": round(self.memory_gib_seconds, 3),
            "est_cost_usd": round(self.est_cost_usd, 6),
        }


def attempt_cost(attempt: Attempt, prices: PriceTable) -> Cost:
    seconds = attempt.seconds
    vcpu_s = attempt.vcpus * seconds
    gib_s = attempt.memory_mib / MIB_PER_GIB * seconds
    per_vcpu_hour, per_gib_hour = prices.rates(attempt.capacity)
    return Cost(vcpu_s, gib_s, (vcpu_s * per_vcpu_hour + gib_s * per_gib_hour) / 3600.0)


def total_cost(attempts: Iterable[Attempt], prices: PriceTable) -> Cost:
    out = Cost()
    for attempt in attempts:
        out = out + attempt_cost(attempt, prices)
    return out
