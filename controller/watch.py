"""Watchdogs and gauges beside the pipeline: jobs RUNNABLE for too long (a compute environment that
cannot place them), and the jobs-by-state and queue-depth gauges."""

from __future__ import annotations

import time

from controller.ledger import Ledger
from controller.metrics import JOB_GAUGE_STATES, Metrics
from controller.reconcile import ACTIVE_JOB_PAGE
from controller.sources.base import EventSource
from controller.states import JobState
from core.logs import get_logger


class Watch:
    def __init__(
        self, *, ledger: Ledger, source: EventSource | None, metrics: Metrics, runnable_alarm_seconds: int
    ) -> None:
        self.ledger, self.source, self.metrics = ledger, source, metrics
        self.runnable_alarm_seconds = runnable_alarm_seconds
        self.log = get_logger(component="controller")
        self.runnable_flagged: set[str] = set()

    def check_runnable(self) -> None:
        now = time.time()
        oldest: float | None = None
        limit = self.runnable_alarm_seconds
        still_runnable: set[str] = set()
        for job in (j for page in self.ledger.job_pages([JobState.RUNNABLE], ACTIVE_JOB_PAGE) for j in page):
            oldest = job.updated_at if oldest is None else min(oldest, job.updated_at)
            key = f"{job.job_id}"
            still_runnable.add(key)
            if now - job.updated_at > limit and key not in self.runnable_flagged:
                self.runnable_flagged.add(key)
                self.log.warning(
                    "job.runnable_too_long",
                    run_id=job.run_id,
                    step=job.step,
                    job_id=job.job_id,
                    seconds=int(now - job.updated_at),
                    hint="check the compute environment's max vCPUs, instance types and the job's resources",
                )
        # Forget jobs that left RUNNABLE: the daemon runs for months, and one that comes back is news again.
        self.runnable_flagged &= still_runnable
        self.metrics.oldest_runnable.set(max(0.0, now - oldest) if oldest else 0.0)
        self.metrics.loop_ok("runnable")

    def refresh_gauges(self) -> None:
        counts = self.ledger.job_counts()
        for state in JOB_GAUGE_STATES:
            self.metrics.jobs.labels(state=state).set(counts.get(state, 0))
        try:
            depth = self.source.depth() if self.source is not None else {}
            for (queue, kind), value in depth.items():
                self.metrics.queue_messages.labels(queue=queue, kind=kind).set(value)
        except Exception as exc:  # a gauge refresh must never take the daemon down
            self.log.warning("gauges.queue_depth_failed", error=str(exc))
            return
        self.metrics.loop_ok("gauges")
