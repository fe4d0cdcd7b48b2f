"""A finished run's execution columns (pure): where each step ran, how often it was tried, and what the
run cost (controller.cost), from the ledger's jobs and the earlier attempts each keeps.

The finish stage adds them to the summary row (core.rows: origin "controller") and writes the row back,
so the results table, which is rebuilt from rows/, carries them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controller.cost import Attempt, Cost, PriceTable, attempt_cost
from controller.ledger import JobRow
from controller.model import Step

# The step whose placement the row's scalar columns name: the one that reads the whole input.
MAIN_STEP = Step.ALIGNSTATS


def attempts_of(job: JobRow) -> list[tuple[Attempt, dict[str, Any]]]:
    """Every attempt of a job, earlier ones (its history) first, each with where it ran."""
    spec = job.job_spec
    # A shard array (#17) is priced as all its children running over the array's whole span: an upper
    # bound (children that queued or finished early cost less); the ledger keeps the parent's times only.
    width = max(1, spec.array_size)
    vcpus, memory = spec.vcpus * width, spec.memory_mib * width
    out = []
    for earlier in job.earlier_attempts:
        attempt = Attempt(vcpus, memory, earlier.get("started_at"), earlier.get("stopped_at"),
                          earlier.get("capacity"))  # fmt: skip
        out.append((attempt, earlier))
    current = {"queue": job.queue, "compute_environment": job.compute_environment, "capacity": job.capacity}
    out.append((Attempt(vcpus, memory, job.started_at, job.stopped_at, job.capacity), current))
    return out


def execution_columns(jobs: Sequence[JobRow], prices: PriceTable) -> dict[str, Any]:
    """attempts, reclaims, queue, compute_environment, capacity (of the alignstats step), the cost
    columns summed over every attempt of every step, and `steps`: the same per step."""
    total = Cost()
    steps: list[dict[str, Any]] = []
    for job in jobs:
        cost = Cost()
        for attempt, _where in attempts_of(job):
            cost = cost + attempt_cost(attempt, prices)
        total = total + cost
        steps.append(
            {
                "step": job.step,
                "attempts": job.attempts,
                "reclaims": job.reclaims,
                "queue": job.queue or "",
                "compute_environment": job.compute_environment or "",
                "capacity": job.capacity or "",
                **cost.columns(),
            }
        )
    main = next((s for s in steps if s["step"] == MAIN_STEP), steps[-1] if steps else {})
    return {
        "attempts": sum(j.attempts for j in jobs),
        "reclaims": sum(j.reclaims for j in jobs),
        "queue": main.get("queue", ""),
        "compute_environment": main.get("compute_environment", ""),
        "capacity": main.get("capacity", ""),
        **total.columns(),
        "steps": steps,
    }
