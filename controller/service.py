"""The controller's work, one method per loop: poll events, submit ready jobs, reconcile job states,
watch RUNNABLE ages, refresh gauges, keep the results table current.

`Controller` holds no scheduling logic (daemon.py runs these methods on APScheduler; `--once` calls them in
a plain loop) and no AWS specifics (those live behind the executor, event source and object store). Each
method is safe to call from its own scheduler thread: the ledger serialises writes.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from controller.config import ControllerConfig
from controller.events import MalformedMessage, ObjectEvent, ObjectKind, parse_message
from controller.executors.base import Executor, ExecutorError, JobStatus, SubmitRequest
from controller.inbox import Inbox, inbox_for
from controller.ledger import JobRow, Ledger
from controller.metrics import JOB_GAUGE_STATES, Metrics
from controller.model import InputObject, Plan, Rejection, submission_order
from controller.planner import Admission, PlanContext, admit, build_plan, index_candidates, resolve_path
from controller.results_table import write_table
from controller.sources.base import EventSource, Message
from controller.states import BATCH_ACTIVE, JOB_DEAD, JOB_TERMINAL, UNSUBMITTED, JobState, RunState
from controller.stopflag import StopFlag
from core.errors import WorkerError
from core.locations import LocationError, parse_location
from core.logs import get_logger
from core.objectstore import ObjectStore
from core.version import __version__

# Jobs per ledger page in the reconcile and RUNNABLE walks: ten DescribeJobs calls' worth, about 1 MB.
ACTIVE_JOB_PAGE = 1000


@dataclass
class PollResult:
    received: int = 0
    acked: int = 0
    left: int = 0  # not acknowledged: malformed (left for redrive) or failed transiently


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


class Controller:
    def __init__(
        self,
        cfg: ControllerConfig,
        *,
        ledger: Ledger,
        executor: Executor,
        source: EventSource | None,
        metrics: Metrics | None = None,
        store: ObjectStore | None = None,
        inbox: Inbox | None = None,
        io_threads: int = 8,
        submit_threads: int = 8,
    ) -> None:
        self.cfg = cfg
        self.ledger = ledger
        self.executor = executor
        self.source = source
        self.metrics = metrics or Metrics()
        self.inbox = inbox or inbox_for(cfg)
        self.store = store or self.inbox.object_store()
        self.log = get_logger(component="controller")
        self._in_flight: dict[str, Message] = {}
        self._in_flight_lock = threading.Lock()
        self._table_dirty = threading.Event()
        self._runnable_flagged: set[str] = set()
        self.stopping = StopFlag()  # set by the daemon's signal handler: no locks (see stopflag)
        self._submit_lock = threading.Lock()
        # Two pools: a submission pass queues hundreds of runs that each wait on the SubmitJob token bucket;
        # sharing one pool would park the next batch of messages behind them (ingest paced by submission,
        # messages held in flight for minutes).
        self._pool = ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="controller-io")
        self._submit_pool = ThreadPoolExecutor(
            max_workers=submit_threads, thread_name_prefix="controller-submit"
        )

    # -- events -------------------------------------------------------------------------------------
    def poll(self, max_messages: int = 10) -> PollResult:
        """Receive one batch of messages, record their events, acknowledge what was committed."""
        result = PollResult()
        if self.stopping.is_set():
            return result
        if self.source is None:
            return result
        messages = self.source.receive(max_messages)
        result.received = len(messages)
        done: list[Message] = []
        left: list[Message] = []
        with self._in_flight_lock:
            for m in messages:
                self._in_flight[m.message_id] = m
        try:
            # Messages are independent (the ledger's UNIQUE identity settles duplicates), and handling one
            # is mostly waiting on S3 HEAD/LIST: handle a batch concurrently.
            for msg, ok in zip(messages, self._pool.map(self.handle_message, messages), strict=True):
                (done if ok else left).append(msg)
            if done:
                # Only now: every event of these messages is committed in the ledger.
                self.source.ack(done)
        finally:
            with self._in_flight_lock:
                for m in messages:
                    self._in_flight.pop(m.message_id, None)
            if left:
                self.source.release(left)
        result.acked, result.left = len(done), len(left)
        self.metrics.loop_ok("poll")
        return result

    def extend_in_flight(self) -> None:
        """Keep messages being processed invisible (a slow ledger or S3 must not cause a redelivery)."""
        with self._in_flight_lock:
            msgs = list(self._in_flight.values())
        if msgs and self.source is not None:
            self.source.extend(msgs, self.cfg.queue.visibility_timeout)

    def handle_message(self, msg: Message) -> bool:
        """True when the message can be deleted (all of its events are committed or deliberately ignored)."""
        try:
            parsed = parse_message(msg.body)
        except MalformedMessage as exc:
            self.metrics.events.labels(outcome="malformed").inc()
            self.log.warning(
                "event.malformed",
                message_id=msg.message_id,
                receive_count=msg.receive_count,
                reason=str(exc),
                body_prefix=msg.body[:200],
            )
            return False
        if parsed.test_event:
            self.metrics.events.labels(outcome="test_event").inc()
            self.log.info("event.test_event", message_id=msg.message_id)
            return True
        if parsed.ignored_records:
            self.metrics.events.labels(outcome="ignored").inc(parsed.ignored_records)
        for ev in parsed.events:
            try:
                self.handle_event(ev)
            except (WorkerError, OSError) as exc:
                # The object store is unreachable or the ledger could not commit: leave the message for a
                # redelivery instead of losing the event.
                self.log.error("event.failed", key=ev.key, bucket=ev.bucket, error=str(exc))
                return False
        return True

    def handle_event(self, ev: ObjectEvent) -> str:
        """Record one object event; returns the outcome label counted."""
        kind = ev.kind
        outcome: str
        if not self.inbox.owns(ev.bucket, ev.key) or kind is ObjectKind.OTHER:
            outcome = "ignored"
            self.log.info(
                "event.ignored", bucket=ev.bucket, key=ev.key, reason="not a BAM/CRAM/index in the inbox"
            )
        elif kind is ObjectKind.INDEX:
            self.ledger.record_index(ev.bucket, ev.key, ev.identity_version)
            outcome = "index_recorded"
            self.log.info("event.index_recorded", bucket=ev.bucket, key=ev.key)
        elif self.ledger.run_exists(ev.bucket, ev.key, ev.identity_version):
            outcome = "duplicate"
            self.log.info("event.duplicate", bucket=ev.bucket, key=ev.key, etag=ev.etag)
        else:
            outcome = self._accept(ev)
        self.metrics.events.labels(outcome=outcome).inc()
        return outcome

    def _index_present(self, ev: ObjectEvent) -> bool:
        candidates = index_candidates(ev.key)
        if self.ledger.has_index(ev.bucket, candidates):
            return True
        try:
            return self.inbox.index_present(ev.bucket, candidates, self.store)
        except LocationError:
            return False  # not a name the store can look up: let the index step make one

    def plan_context(self, key: str) -> PlanContext:
        opts = self.cfg.pipeline.for_key(key)
        opts = replace(
            opts,
            target_bed=resolve_path(opts.target_bed, reference_root=self.inbox.reference_root),
            reference_fasta=resolve_path(opts.reference_fasta, reference_root=self.inbox.reference_root),
        )
        return PlanContext(
            inbox_root=self.cfg.inbox_root,
            results_root=self.cfg.results_root,
            pipeline=opts,
            tiers=self.cfg.tiers,
            pipeline_version=__version__,
            inbox=self.inbox,
        )

    def _accept(self, ev: ObjectEvent) -> str:
        obj = InputObject(ev.bucket, ev.key, ev.size, ev.etag, ev.version_id, False, ev.event_time)
        # The key is checked (once) before any I/O is attempted with it.
        admission = admit(obj, self.inbox)
        plan: Plan | Rejection = admission
        if isinstance(admission, Admission):
            obj = replace(obj, index_present=self._index_present(ev))
            admission = replace(admission, obj=obj)
            # [[pipeline.prefix]] matches the key as the results layout names it (the inbox key).
            plan = build_plan(admission, self.plan_context(admission.inbox_key))
        if isinstance(plan, Rejection):
            if self.ledger.create_rejected(obj, plan):
                self.log.warning("event.rejected", run_id=plan.run_id, key=ev.key, reason=plan.reason)
            return "ignored"
        if not self.ledger.create_run(obj, plan):
            self.log.info("event.duplicate", run_id=plan.run_id, key=ev.key)
            return "duplicate"
        self.metrics.runs.labels(outcome="created").inc()
        self.log.info(
            "run.created",
            run_id=plan.run_id,
            sample=plan.sample,
            key=ev.key,
            size=ev.size,
            steps=[j.step for j in plan.jobs],
        )
        return "accepted"

    # -- submission ---------------------------------------------------------------------------------
    def submit_ready(self, limit: int = 500) -> int:
        """Submit every planned job whose upstream jobs have ids. Returns the number submitted.

        One pass at a time (two passes could both see a PLANNED job and submit it twice); within a pass,
        runs are submitted by a few threads, because SubmitJob latency, not CPU, is the limit and the
        token bucket already caps the rate."""
        if not self._submit_lock.acquire(blocking=False):
            return 0
        try:
            submitted = 0
            failed = threading.Event()

            def one(run_id: str) -> int:
                # On SIGTERM stop between runs: a pass holds up to `limit` runs, minutes of SubmitJob
                # calls at the token bucket's rate, longer than systemd waits for a graceful stop.
                if failed.is_set() or self._stop_submitting():
                    return 0
                try:
                    return self._submit_run(run_id)
                except ExecutorError as exc:
                    if exc.permanent:
                        # Refused outright: fail this run (with the reason) so it cannot wedge the others.
                        self._fail_unsubmittable(run_id, str(exc))
                        return 0
                    failed.set()  # back off until the next pass; intents stay and are resolved by name
                    self.log.error("job.submit_failed", run_id=run_id, error=str(exc))
                    return 0

            while True:
                run_ids = self.ledger.runs_with_unsubmitted_jobs(limit=limit)
                if not run_ids or self._stop_submitting():
                    return submitted
                counts = list(self._submit_pool.map(one, run_ids))
                submitted += sum(counts)
                if failed.is_set() or sum(counts) == 0:
                    return submitted
        finally:
            self._submit_lock.release()

    def _stop_submitting(self) -> bool:
        # Local jobs are run to the end on shutdown, so local submission goes on.
        return self.stopping.is_set() and not self.executor.submits_while_stopping

    def _fail_unsubmittable(self, run_id: str, reason: str) -> None:
        for job in self.ledger.jobs_for_run(run_id):
            if job.state in UNSUBMITTED:
                # An INTENT here never reached Batch as a job (the request was refused): safe to close.
                self.ledger.update_job(
                    run_id, job.step, state=JobState.FAILED, reason=f"submission refused: {reason}"
                )
        self.log.error("job.submit_refused", run_id=run_id, error=reason)
        self._evaluate_run(run_id)

    def _submit_run(self, run_id: str) -> int:
        jobs = {j.step: j for j in self.ledger.jobs_for_run(run_id)}
        count = 0
        specs = {step: job.job_spec for step, job in jobs.items()}
        for spec in submission_order(specs.values()):
            step, job = spec.step, jobs[spec.step]
            if job.state not in UNSUBMITTED:
                continue
            upstream = [jobs[d] for d in spec.depends_on if d in jobs]
            if any(u.state in JOB_DEAD for u in upstream):
                return count
            if any(u.job_id is None for u in upstream):
                return count  # wait for the upstream submission
            log = self.log.bind(
                run_id=run_id, sample=spec.tags.get("alignbatch:sample"), step=step, job_name=job.name
            )
            if job.state == JobState.INTENT:
                # A crash may have happened between SubmitJob and recording its id: look before resubmitting.
                found = self.executor.find_by_name(job.name)
                if found is not None:
                    self.ledger.mark_submitted(run_id, step, found.job_id)
                    jobs[step] = replace(job, state=JobState.SUBMITTED, job_id=found.job_id)
                    log.info("job.intent_resolved", job_id=found.job_id)
                    self.metrics.submissions.labels(step=step, outcome="recovered").inc()
                    continue
            else:
                self.ledger.mark_intent(run_id, step)
            ids = {s: j.job_id for s, j in jobs.items() if j.job_id}
            request = SubmitRequest(
                name=job.name,
                step=step,
                command=spec.worker.argv(ids),
                # Only upstream jobs that have not finished: Batch forgets finished jobs after a day, and a
                # retried run reuses succeeded steps whose ids may be gone.
                depends_on=tuple(u.job_id for u in upstream if u.job_id and u.state != JobState.SUCCEEDED),
                vcpus=spec.vcpus,
                memory_mib=spec.memory_mib,
                timeout_seconds=spec.timeout_seconds,
                tags=spec.tags,
            )
            try:
                job_id = self.executor.submit(request)
            except ExecutorError:
                self.metrics.submissions.labels(step=step, outcome="error").inc()
                raise
            self.ledger.mark_submitted(run_id, step, job_id)
            jobs[step] = replace(job, state=JobState.SUBMITTED, job_id=job_id)
            self.metrics.submissions.labels(step=step, outcome="submitted").inc()
            log.info("job.submitted", job_id=job_id, depends_on=list(request.depends_on))
            count += 1
        return count

    # -- reconcile ----------------------------------------------------------------------------------
    def reconcile(self) -> int:
        """Bring job states in the ledger up to date with the executor; finish runs. Returns changes.

        Active jobs are walked a page at a time (one DescribeJobs batch per 100 of them), so a burst of
        thousands of files does not hold every active job and its status in memory at once."""
        changes = 0
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
                self._evaluate_run(run_id)
        self._flush_table()
        self.metrics.loop_ok("reconcile")
        return changes

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

    def _apply_status(self, job: JobRow, status: JobStatus) -> bool:
        changed = self.ledger.update_job(
            job.run_id,
            job.step,
            state=status.state,
            exit_code=status.exit_code,
            reason=status.reason,
            log_stream=status.log_stream,
            started_at=status.started_at,
            stopped_at=status.stopped_at,
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

    def _evaluate_run(self, run_id: str) -> None:
        run = self.ledger.get_run(run_id)
        if run is None or run.state != RunState.ACTIVE:
            return
        jobs = self.ledger.jobs_for_run(run_id)
        bad = [j for j in jobs if j.state in (JobState.FAILED, JobState.LOST)]
        log = self.log.bind(run_id=run_id, sample=run.sample)
        if bad:
            first = bad[0]
            reason = f"{first.step} {first.state.lower()}: {first.reason or ''}".strip()
            if first.exit_code is not None:
                reason += f" (exit {first.exit_code})"
            pending = [j for j in jobs if j.state not in JOB_TERMINAL]
            if pending:
                ids = [j.job_id for j in pending if j.job_id]
                if ids:
                    try:
                        self.executor.cancel(ids, f"upstream {first.step} failed")
                    except ExecutorError as exc:
                        log.warning("job.cancel_failed", error=str(exc))
                for j in pending:
                    self.ledger.update_job(
                        run_id, j.step, state=JobState.CANCELLED, reason=f"upstream {first.step} failed"
                    )
            if self.ledger.finish_run(run_id, RunState.FAILED, reason):
                self.metrics.runs.labels(outcome="failed").inc()
                log.error("run.failed", reason=reason, log_stream=first.log_stream, key=run.key)
            return
        if jobs and all(j.state == JobState.SUCCEEDED for j in jobs):
            try:
                row = json.loads(self.store.read_bytes(parse_location(run.row_uri or "")))
                if not isinstance(row, dict):
                    raise ValueError("row is not a JSON object")
            except (WorkerError, LocationError, ValueError) as exc:
                if self.ledger.finish_run(run_id, RunState.FAILED, f"summary row unreadable: {exc}"):
                    self.metrics.runs.labels(outcome="failed").inc()
                    log.error("run.failed", reason=f"summary row unreadable: {exc}")
                return
            now = time.time()
            self.ledger.record_output(run_id, "row", run.row_uri or "")
            for j in jobs:
                if j.step == "index":
                    self.ledger.record_output(run_id, "index", j.job_spec.outputs[0])
            self.ledger.upsert_result(run.inbox_key, run_id, now, row)
            self._table_dirty.set()
            if self.ledger.finish_run(run_id, RunState.SUCCEEDED):
                self.metrics.runs.labels(outcome="succeeded").inc()
                self.metrics.input_bytes.inc(run.size)
                summary = next((j for j in jobs if j.step == "summary"), None)
                written = (summary.stopped_at if summary and summary.stopped_at else None) or now
                if run.event_time:
                    self.metrics.end_to_end.observe(max(0.0, written - run.event_time))
                log.info("run.succeeded", report=run.report_uri, row=run.row_uri, key=run.key)

    def _flush_table(self) -> None:
        if not self._table_dirty.is_set():
            return
        self._table_dirty.clear()
        try:
            csv_uri, jsonl_uri = write_table(self.store, self.cfg.results_root, self.ledger.result_rows())
            self.log.info("table.written", csv=csv_uri, jsonl=jsonl_uri)
        except (WorkerError, LocationError) as exc:
            self._table_dirty.set()
            self.log.error("table.write_failed", error=str(exc))

    # -- watchdogs and gauges -----------------------------------------------------------------------
    def check_runnable(self) -> None:
        now = time.time()
        oldest: float | None = None
        limit = self.cfg.batch.runnable_alarm_seconds
        still_runnable: set[str] = set()
        for job in (j for page in self.ledger.job_pages([JobState.RUNNABLE], ACTIVE_JOB_PAGE) for j in page):
            oldest = job.updated_at if oldest is None else min(oldest, job.updated_at)
            key = f"{job.job_id}"
            still_runnable.add(key)
            if now - job.updated_at > limit and key not in self._runnable_flagged:
                self._runnable_flagged.add(key)
                self.log.warning(
                    "job.runnable_too_long",
                    run_id=job.run_id,
                    step=job.step,
                    job_id=job.job_id,
                    seconds=int(now - job.updated_at),
                    hint="check the compute environment's max vCPUs, instance types and the job's resources",
                )
        # Forget jobs that left RUNNABLE: the daemon runs for months, and one that comes back is news again.
        self._runnable_flagged &= still_runnable
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

    # -- operator actions ---------------------------------------------------------------------------
    def cancel_run(self, run_id: str, reason: str = "cancelled by operator") -> bool:
        jobs = self.ledger.jobs_for_run(run_id)
        ids = [j.job_id for j in jobs if j.job_id and j.state not in JOB_TERMINAL]
        if ids:
            self.executor.cancel(ids, reason)
        for j in jobs:
            if j.state not in JOB_TERMINAL:
                self.ledger.update_job(run_id, j.step, state=JobState.CANCELLED, reason=reason)
        return self.ledger.finish_run(run_id, RunState.CANCELLED, reason)

    def status_line(self) -> str:
        runs = self.ledger.run_counts()
        jobs = self.ledger.job_counts()
        running = sum(jobs.get(s, 0) for s in BATCH_ACTIVE)
        return (
            f"runs active={runs['active']} succeeded={runs['succeeded']} failed={runs['failed']} "
            f"rejected={runs['rejected']}; jobs in flight={running}"
        )

    def idle(self) -> bool:
        """Nothing left to do: no unsubmitted or in-flight jobs (used by --once)."""
        counts = self.ledger.job_counts()
        busy = sum(counts.get(s, 0) for s in (*UNSUBMITTED, *BATCH_ACTIVE))
        return busy == 0 and self.executor.active_count() == 0

    def describe(self) -> dict[str, Any]:
        return {"runs": self.ledger.run_counts(), "jobs": self.ledger.job_counts()}
