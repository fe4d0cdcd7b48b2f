"""Reconcile, the third stage: the executor's view of active jobs → the ledger, then finished runs to
the finish stage.

Active jobs are walked a page at a time (one DescribeJobs batch per 100 of them). A job whose upstream is
active in the same page is not described (Batch holds it PENDING). A job the executor no longer knows is
resolved by its outputs, submitted again (an executor that forgets on restart) or marked LOST.

With `[batch] events_enabled`, Batch Job State Change events (EventBridge → the state queue) are applied as
they arrive (`apply_job_events`), each through the same transition table but forward only: a duplicate or
a late event never moves a job back. Reconcile then runs every `events_sweep_seconds` as a sweep that
catches what no event was seen for (an event lost, a job submitted before the rule existed, a Batch retry's
step back to RUNNABLE).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter as MetricCounter

from controller.events import JobStateEvent
from controller.executors.base import Executor, ExecutorError, JobStatus
from controller.finish import Finisher
from controller.ledger import JobRow, Ledger
from controller.metrics import Metrics
from controller.placement import QueuePolicy, is_reclaim, local_policy
from controller.states import BATCH_ACTIVE, JobState, RunState
from core.errors import WorkerError
from core.locations import LocationError, parse_location
from core.logs import get_logger
from core.objectstore import ObjectStore

# Jobs per ledger page in the reconcile and RUNNABLE walks: ten DescribeJobs calls' worth, about 1 MB.
ACTIVE_JOB_PAGE = 1000


def held_by_upstream(page: Sequence[JobRow]) -> dict[str, str]:
    """Active jobs whose upstream job (same run, `depends_on`) is active in the same page: child job id
    -> that upstream's job id. Batch holds such a child PENDING until its upstream ends, so describing it
    sooner tells nothing; in a burst this skips about two thirds of DescribeJobs (every run has 2-3 jobs
    and only the first can be past PENDING). An upstream on another page is not known to be active, so
    its children are described as before."""
    active = {(j.run_id, j.step): j for j in page if j.job_id}
    runs = Counter(j.run_id for j in page if j.job_id)
    held: dict[str, str] = {}
    for job in page:
        if not job.job_id or runs[job.run_id] < 2:
            continue  # alone in its run: nothing upstream of it is active
        for step in job.job_spec.depends_on:
            upstream = active.get((job.run_id, step))
            # A child submitted before this upstream (a requeued upstream after a restart) does not
            # depend on it in Batch: never hold it behind a job it does not wait for.
            if upstream and upstream.job_id and (job.submitted_at or 0) >= (upstream.submitted_at or 0):
                held[job.job_id] = upstream.job_id
                break
    return held


class Reconciler:
    def __init__(
        self, *, ledger: Ledger, executor: Executor, store: ObjectStore, metrics: Metrics, finisher: Finisher,
        queues: QueuePolicy | None = None,
    ) -> None:  # fmt: skip
        self.ledger, self.executor, self.store, self.metrics = ledger, executor, store, metrics
        self.finisher = finisher
        self.queues = queues or local_policy()  # reclaimed steps are planned again (controller.placement)
        self.reclaims = MetricCounter(
            "alignbatch_reclaims",
            "Attempts whose host Batch took away (Host EC2*: Spot reclaim), by step and the queue the "
            "next attempt goes to (empty: none, the run fails)",
            ["step", "next_queue"],
            registry=metrics.registry,
        )
        self.log = get_logger(component="controller")
        self.job_events = MetricCounter(
            "alignbatch_job_events",
            "Batch Job State Change events by outcome: applied, stale (duplicate, or the job is already "
            "further along), unknown (not one of our job ids), malformed, ignored (another kind of event)",
            ["outcome"],
            registry=metrics.registry,
        )

    def apply_job_events(self, events: Sequence[JobStateEvent]) -> int:
        """Apply state-change events (in any order, any number of times); finish the runs whose jobs
        ended; write the table if any did. Returns how many events changed the ledger."""
        changed_runs: set[str] = set()
        applied = 0
        for ev in events:
            outcome = self._apply_event(ev, changed_runs)
            self.job_events.labels(outcome=outcome).inc()
            applied += outcome == "applied"
        for run_id in changed_runs:
            self.finisher.evaluate_run(run_id)
        if changed_runs:
            self.finisher.flush_table()
        return applied

    def _apply_event(self, ev: JobStateEvent, changed_runs: set[str]) -> str:
        job = self.ledger.job_by_id(ev.job_id)
        if job is None:
            # Another system's job on the same queue, or ours before its id was committed (the INTENT is
            # resolved by name on the next submit pass): the sweep describes it either way.
            self.log.debug("job_event.unknown", job_id=ev.job_id, job_name=ev.job_name, state=ev.status)
            return "unknown"
        status = JobStatus(
            job_id=ev.job_id, name=ev.job_name, state=ev.status, exit_code=ev.exit_code, reason=ev.reason,
            log_stream=ev.log_stream, started_at=ev.started_at, stopped_at=ev.stopped_at,
        )  # fmt: skip
        if not self._apply_status(job, status, forward_only=True):
            return "stale"
        if status.state in (JobState.SUCCEEDED, JobState.FAILED):
            changed_runs.add(job.run_id)
        return "applied"

    def reconcile(self) -> int:
        """Bring job states in the ledger up to date with the executor; finish runs. Returns changes.

        Active jobs are walked a page at a time (one DescribeJobs batch per 100 of them), so a burst of
        thousands of files does not hold every active job and its status in memory at once."""
        changes = 0
        evaluated: set[str] = set()
        for page in self.ledger.job_pages(BATCH_ACTIVE, ACTIVE_JOB_PAGE):
            ids = {j.job_id: j for j in page if j.job_id}
            if not ids:
                continue
            held = held_by_upstream(page)
            changed_runs: set[str] = set()
            finished, n = self._describe_and_apply([j for i, j in ids.items() if i not in held], changed_runs)
            changes += n
            # Children whose upstream job finished in this very pass are described now (and theirs in
            # turn, down the chain), so holding them back never delays noticing their own end.
            while released := [child for child, parent in held.items() if parent in finished]:
                for child in released:
                    del held[child]
                ended, n = self._describe_and_apply([ids[c] for c in released], changed_runs)
                finished |= ended
                changes += n
            self.metrics.reconcile_jobs.labels(outcome="held").inc(len(held))
            # A run's jobs may sit on different pages; _evaluate_run reads them all from the ledger and
            # does nothing until every one has finished, so evaluating per page is safe.
            for run_id in changed_runs:
                self.finisher.evaluate_run(run_id)
            evaluated |= changed_runs
        self.sweep_finishable(skip=evaluated)
        self.finisher.flush_table()
        self.metrics.loop_ok("reconcile")
        return changes

    def sweep_finishable(self, skip: set[str] | frozenset[str] = frozenset()) -> int:
        """Finish active runs whose jobs have all ended but that no pass finished: a crash or failed
        commit after the last job's SUCCEEDED, a transient error reading the row, an operator's
        `retry` of a run whose finishing failed. Returns how many were decided."""
        decided = 0
        for run_id in self.ledger.finishable_runs():
            if run_id in skip:
                continue  # evaluated a moment ago in this pass
            self.finisher.evaluate_run(run_id)
            run = self.ledger.get_run(run_id)
            if run is not None and run.state != RunState.ACTIVE:
                decided += 1
                self.log.info("run.swept", run_id=run_id, state=run.state)
        return decided

    def _describe_and_apply(self, jobs: list[JobRow], changed_runs: set[str]) -> tuple[set[str], int]:
        """One DescribeJobs round for `jobs`; record what changed. Returns the ids of jobs that are
        no longer active (finished, or resolved after going missing) and the number of changes."""
        if not jobs:
            return set(), 0
        self.metrics.reconcile_jobs.labels(outcome="described").inc(len(jobs))
        statuses = self.executor.describe([j.job_id for j in jobs if j.job_id])
        ended: set[str] = set()
        changes = 0
        now = time.time()
        for job in jobs:
            status = statuses.get(job.job_id or "")
            if status is None:
                submitted = job.submitted_at if job.submitted_at is not None else now
                if now - submitted < self.executor.missing_grace_seconds:
                    continue
                if self._resolve_missing(job):
                    changed_runs.add(job.run_id)
                    changes += 1
                ended.add(job.job_id or "")  # resolved, or requeued: this job id is no longer active
                continue
            if self._apply_status(job, status):
                changes += 1
                if status.state in (JobState.SUCCEEDED, JobState.FAILED):
                    changed_runs.add(job.run_id)
                    ended.add(job.job_id or "")
        return ended, changes

    def _apply_status(self, job: JobRow, status: JobStatus, *, forward_only: bool = False) -> bool:
        if status.state == JobState.FAILED and self._replan_reclaimed(job, status):
            return True
        changed = self.ledger.update_job(
            job.run_id,
            job.step,
            state=status.state,
            exit_code=status.exit_code,
            reason=status.reason,
            log_stream=status.log_stream,
            started_at=status.started_at,
            stopped_at=status.stopped_at,
            forward_only=forward_only,
            job_id=job.job_id,
            compute_environment=status.compute_environment,
            capacity=status.capacity,
        )
        if not changed:
            return False
        log = self._job_log(job)
        if status.state not in (JobState.SUCCEEDED, JobState.FAILED):
            log.info("job.state", state=status.state)
            return True
        outcome = status.state.lower()
        self.metrics.completions.labels(step=job.step, outcome=outcome).inc()
        if status.started_at and status.stopped_at:
            self.metrics.job_duration.labels(step=job.step).observe(
                max(0.0, status.stopped_at - status.started_at)
            )
        if outcome == "succeeded":
            log.info("job.succeeded", log_stream=status.log_stream)
        else:
            log.warning(
                "job.failed", exit_code=status.exit_code, reason=status.reason, log_stream=status.log_stream
            )
        return True

    def _replan_reclaimed(self, job: JobRow, status: JobStatus) -> bool:
        """A failed attempt whose host went away: plan the step again (on the next queue once this one
        has had its reclaims) instead of failing the run. False when it is not a reclaim, or the step
        has had `max_reclaims` already (then it fails as any other job)."""
        if not is_reclaim(status.reason):
            return False
        log = self._job_log(job)
        if not self.queues.reattempt(job.reclaims, status.reason):
            self.reclaims.labels(step=job.step, next_queue="").inc()
            log.warning("job.reclaimed", reason=status.reason, reclaims=job.reclaims + 1, next_queue=None)
            return False
        downstream = self.ledger.replan_reclaimed(
            job.run_id, job.step, job_id=job.job_id or "", reason=status.reason or "",
            started_at=status.started_at, stopped_at=status.stopped_at,
            compute_environment=status.compute_environment, capacity=status.capacity,
        )  # fmt: skip
        if downstream is None:
            return False  # a stale status (the step has another job by now): update_job ignores it too
        next_queue = self.queues.queue_for(job.reclaims + 1)
        self.reclaims.labels(step=job.step, next_queue=next_queue).inc()
        log.warning(
            "job.reclaimed", reason=status.reason, reclaims=job.reclaims + 1, next_queue=next_queue,
            queue=job.queue, compute_environment=status.compute_environment,
        )  # fmt: skip
        if downstream:
            try:  # they wait on the old job id, which will never succeed: the new attempt replaces them
                self.executor.cancel(downstream, f"upstream {job.step} reclaimed; planned again")
            except ExecutorError as exc:
                log.warning("job.cancel_failed", error=str(exc), job_ids=downstream)
        return True

    def _job_log(self, job: JobRow) -> Any:
        sample = job.job_spec.tags.get("alignbatch:sample")
        return self.log.bind(run_id=job.run_id, sample=sample, step=job.step, job_id=job.job_id)

    def _outputs_exist(self, job: JobRow) -> bool:
        outputs = job.job_spec.outputs
        if not outputs:
            return False
        try:
            return all(self.store.head(parse_location(uri)) is not None for uri in outputs)
        except (WorkerError, LocationError):
            return False

    def _resolve_missing(self, job: JobRow) -> bool:
        """The executor no longer knows this job: decide from its outputs, never poll it forever."""
        log = self._job_log(job)
        if self._outputs_exist(job):
            self.ledger.update_job(
                job.run_id, job.step, state=JobState.SUCCEEDED, reason="resolved by its outputs"
            )
            self.metrics.completions.labels(step=job.step, outcome="succeeded").inc()
            log.info("job.resolved_by_outputs")
            return True
        if self.executor.requeue_missing:
            self.ledger.requeue_job(job.run_id, job.step)
            log.warning("job.requeued", reason="executor does not know the job (controller restarted)")
            return False
        self.ledger.update_job(
            job.run_id, job.step, state=JobState.LOST, reason="job unknown to the executor, no outputs"
        )
        self.metrics.completions.labels(step=job.step, outcome="lost").inc()
        log.error("job.lost")
        return True
