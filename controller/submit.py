"""Submission, the second stage: PLANNED jobs → the executor, in the order the plan's depends_on gives.

Two-phase per job: the INTENT is committed before the executor is called and the job id after, so a crash
in between is resolved by looking the deterministic name up (never a second submission). A job waits for
its upstream jobs' ids (Batch's dependsOn takes ids); a dead upstream stops the run's submission.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from controller.array_submit import ArraySubmitter
from controller.executors.base import Executor, ExecutorError, SubmitRequest
from controller.ledger import JobRow, Ledger
from controller.metrics import Metrics
from controller.model import Step, submission_order
from controller.placement import QueuePolicy, local_policy
from controller.references import ReferenceCheck
from controller.states import JOB_DEAD, UNSUBMITTED, JobState, RunState
from controller.stopflag import StopFlag
from core.errors import WorkerError
from core.locations import LocationError
from core.logs import get_logger


class Submitter:
    def __init__(
        self,
        *,
        ledger: Ledger,
        executor: Executor,
        metrics: Metrics,
        stopping: StopFlag,
        on_refused: Callable[[str], None],
        submit_threads: int = 8,
        references: ReferenceCheck | None = None,
        queues: QueuePolicy | None = None,
        arrays: ArraySubmitter | None = None,
    ) -> None:
        self.ledger, self.executor, self.metrics, self.stopping = ledger, executor, metrics, stopping
        # Which queue each attempt goes to (Spot first, On-Demand after reclaims): controller.placement.
        self.queues = queues or local_policy()
        # Bursts and backfills as array jobs first (controller.array_submit); the rest one run at a time.
        self.arrays = arrays
        self.references = references  # CRAM @SQ M5 vs the reference, before the first submission
        self.on_refused = on_refused  # a run failed at submission: decide its verdict (finish stage)
        self.log = get_logger(component="controller")
        self._submit_lock = threading.Lock()
        # Its own pool: a submission pass queues hundreds of runs that each wait on the SubmitJob token
        # bucket; sharing intake's pool would park the next batch of messages behind them (ingest paced by
        # submission, messages held in flight for minutes).
        self._submit_pool = ThreadPoolExecutor(
            max_workers=submit_threads, thread_name_prefix="controller-submit"
        )

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
            if self.arrays is not None and not self._stop_submitting():
                try:
                    submitted += self.arrays.submit_pass()
                except ExecutorError as exc:  # unreachable or throttled: intents stay, next pass resolves
                    self.log.error("array.submit_failed", error=str(exc))
                    return submitted

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
        # An executor that runs its jobs to the end on shutdown needs their downstream jobs submitted too.
        return self.stopping.is_set() and not self.executor.submits_while_stopping

    def _fail_unsubmittable(self, run_id: str, reason: str) -> None:
        for job in self.ledger.jobs_for_run(run_id):
            if job.state in UNSUBMITTED:
                # An INTENT here never reached Batch as a job (the request was refused): safe to close.
                self.ledger.update_job(
                    run_id, job.step, state=JobState.FAILED, reason=f"submission refused: {reason}"
                )
        self.log.error("job.submit_refused", run_id=run_id, error=reason)
        self.on_refused(run_id)

    def _cram_mismatch(self, run_id: str, jobs: dict[str, JobRow]) -> str | None:
        """Before a CRAM run's first submission: why its reference cannot be the one it was written
        with (controller.references), or None. Only while nothing of the run is submitted yet."""
        stats = jobs.get(Step.ALIGNSTATS)
        if self.references is None or stats is None:
            return None
        if any(j.state != JobState.PLANNED for j in jobs.values()):
            return None
        args = stats.job_spec.worker.tool_command()
        if "-T" not in args or "-i" not in args:
            return None
        cram, fasta = args[args.index("-i") + 1], args[args.index("-T") + 1]
        if not cram.split("?", 1)[0].lower().endswith(".cram"):
            return None
        try:
            return self.references.mismatch(cram, fasta)
        except ValueError as exc:  # header unreadable, reference missing: the run cannot be right either
            return str(exc)
        except (WorkerError, LocationError) as exc:
            raise ExecutorError(f"CRAM reference check for {cram}: {exc}") from exc  # transient: next pass

    def _reject(self, run_id: str, jobs: dict[str, JobRow], reason: str) -> None:
        for job in jobs.values():
            self.ledger.update_job(run_id, job.step, state=JobState.CANCELLED, reason="run rejected")
        if self.ledger.finish_run(run_id, RunState.REJECTED, reason):
            self.log.warning("event.rejected", run_id=run_id, reason=reason)

    def _submit_run(self, run_id: str) -> int:
        jobs = {j.step: j for j in self.ledger.jobs_for_run(run_id)}
        count = 0
        reason = self._cram_mismatch(run_id, jobs)
        if reason is not None:
            self._reject(run_id, jobs, reason)
            return 0
        specs = {step: job.job_spec for step, job in jobs.items()}
        for spec in submission_order(specs.values()):
            step, job = str(spec.step), jobs[spec.step]
            if job.state not in UNSUBMITTED:
                continue
            if job.array_name:
                return count  # a child of an array job whose submission the array stage resolves
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
                    queue = self.queues.queue_for(job.reclaims)
                    self.ledger.mark_submitted(run_id, step, found.job_id, queue=queue or None)
                    jobs[step] = replace(job, state=JobState.SUBMITTED, job_id=found.job_id)
                    log.info("job.intent_resolved", job_id=found.job_id)
                    self.metrics.submissions.labels(step=step, outcome="recovered").inc()
                    continue
            else:
                self.ledger.mark_intent(run_id, step)
            ids = {s: j.job_id for s, j in jobs.items() if j.job_id}
            queue = self.queues.queue_for(job.reclaims)
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
                queue=queue,
                share=spec.share,
                # A shard array (#17): N children of one run after its index job, not N_TO_N.
                array_size=spec.array_size,
                n_to_n=False,
                retry_attempts=spec.retry_attempts,
            )
            try:
                job_id = self.executor.submit(request)
            except ExecutorError:
                self.metrics.submissions.labels(step=step, outcome="error").inc()
                raise
            self.ledger.mark_submitted(run_id, step, job_id, queue=queue or None)
            jobs[step] = replace(job, state=JobState.SUBMITTED, job_id=job_id)
            self.metrics.submissions.labels(step=step, outcome="submitted").inc()
            log.info(
                "job.submitted", job_id=job_id, depends_on=list(request.depends_on), queue=queue,
                **({"array_size": request.array_size} if request.array_size else {}),
            )  # fmt: skip
            count += 1
        return count
