"""Local executor: jobs run as processes on this machine, dependencies honoured like Batch's dependsOn.

State lives in memory only (the ledger is the durable record). Per job, under `log_dir`:
    <job name>.log    the job's stdout and stderr (the "log stream" shown by `status`)
A job waits (PENDING) until every job it depends on has SUCCEEDED, then runs (RUNNABLE → RUNNING) when one
of `slots` process slots is free; if an upstream job fails, its dependants fail with "Dependent job failed"
as they would on Batch. An array job (a shard array, #17) is a parent whose children `<id>:<i>` are
processes with AWS_BATCH_JOB_ARRAY_INDEX=i; the parent succeeds when every child has, and fails once
all have ended and one failed. A job with `retry_attempts` has a failed attempt run again, alone, by the
same rules as Batch's retry strategy (controller.executors.retry). After a controller restart the old
jobs are unknown here; the reconcile loop resolves them by their outputs or submits them again
(`requeue_missing`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from controller.executors.base import ExecutorError, FoundJob, JobStatus, SubmitRequest
from controller.executors.retry import child_retry_strategy, should_retry
from controller.placement import Capacity
from controller.states import JobState
from core.programs import find_program

_FINAL = (JobState.SUCCEEDED, JobState.FAILED)  # the executor's own ends (LOST/CANCELLED are ours)


@dataclass
class _LocalJob:
    job_id: str
    request: SubmitRequest
    state: JobState = JobState.SUBMITTED
    exit_code: int | None = None
    reason: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    stopped_at: float | None = None
    proc: subprocess.Popen[bytes] | None = None
    cancelled: bool = False
    reported_at: float | None = None  # when describe() first returned its final state
    attempt: int = 1
    children: list[str] = field(default_factory=list)  # an array parent's child ids, by index
    parent: str | None = None  # an array child's parent id
    array_index: int | None = None


def default_slots() -> int:
    """Concurrency from the CPU count: one job per core (alignstats is single-threaded per job)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def resolve_program(name: str) -> str:
    """Find a console script on PATH, else next to this interpreter (an un-activated venv)."""
    found = find_program(name)
    if found:
        return found
    raise ExecutorError(f"program {name!r} not found on PATH or beside {sys.executable}; install alignbatch")


class LocalExecutor:
    kind = "local"
    requeue_missing = True  # a restart forgets local jobs: submit them again rather than mark them lost
    missing_grace_seconds = 0.0
    supports_arrays = False  # every job its own process anyway
    submits_while_stopping = True  # close(wait=True) runs every job to the end, downstream ones included

    def __init__(
        self,
        log_dir: str | Path,
        *,
        slots: int | None = None,
        env: Mapping[str, str] | None = None,
        forget_after_seconds: float = 600.0,
    ):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.slots = slots or default_slots()
        self.env = dict(os.environ if env is None else env)
        self._jobs: dict[str, _LocalJob] = {}
        # Like Batch, forget finished jobs some time after their final state was reported (the ledger
        # has it by then): a long-running `run --local` must not keep every job it ever ran in memory.
        self.forget_after_seconds = forget_after_seconds
        self._by_name: dict[str, str] = {}
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._pool = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="local-job")
        self._closed = False

    # -- Executor interface -------------------------------------------------------------------------
    def submit(self, request: SubmitRequest) -> str:
        with self._lock:
            if self._closed:
                raise ExecutorError("local executor is shutting down")
            for dep in request.depends_on:
                if dep not in self._jobs:
                    raise ExecutorError(f"job {request.name}: dependency {dep} is unknown to this executor")
            if request.array_size and request.n_to_n:
                raise ExecutorError("the local executor takes no N_TO_N arrays (supports_arrays is False)")
            job = _LocalJob(job_id=str(uuid.uuid4()), request=request, state=JobState.PENDING)
            self._jobs[job.job_id] = job
            self._by_name[request.name] = job.job_id
            if request.array_size:
                # The children run; the parent only sums them up (as Batch's parent does).
                for i in range(request.array_size):
                    child = _LocalJob(
                        job_id=f"{job.job_id}:{i}", request=request, state=JobState.PENDING,
                        parent=job.job_id, array_index=i,
                    )  # fmt: skip
                    self._jobs[child.job_id] = child
                    job.children.append(child.job_id)
                for cid in job.children:
                    self._advance(self._jobs[cid])
            else:
                self._advance(job)
            return job.job_id

    def describe(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        now = time.time()
        with self._lock:
            self._forget_reported(now)
            out = {jid: self._status(self._jobs[jid]) for jid in job_ids if jid in self._jobs}
            for jid in out:
                job = self._jobs[jid]
                if job.state in _FINAL and job.reported_at is None:
                    job.reported_at = now
            return out

    def find_by_name(self, name: str) -> JobStatus | None:
        with self._lock:
            jid = self._by_name.get(name)
            return self._status(self._jobs[jid]) if jid else None

    def cancel(self, job_ids: Iterable[str], reason: str) -> None:
        with self._lock:
            for jid in job_ids:
                job = self._jobs.get(jid)
                if job is None or job.state in _FINAL:
                    continue
                if job.children:
                    self.cancel(job.children, reason)
                    continue
                job.cancelled = True
                if job.proc is not None and job.proc.poll() is None:
                    job.proc.send_signal(signal.SIGTERM)
                    job.reason = reason
                elif job.state != JobState.RUNNING:
                    self._finish(job, JobState.FAILED, None, reason)

    def discover(self, name_pattern: str) -> list[FoundJob]:
        return []  # processes do not outlive the controller that started them

    def active_count(self) -> int:
        with self._lock:
            # An array counts once (its parent), as a job submitted.
            return sum(1 for j in self._jobs.values() if j.state not in _FINAL and j.parent is None)

    def wait_idle(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self.active_count():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(timeout=remaining if remaining is not None else 1.0)
        return True

    def close(self, *, wait: bool) -> None:
        """Stop accepting jobs; with wait=True let every submitted job (and its dependants) finish."""
        if wait:
            self.wait_idle()
        with self._lock:
            self._closed = True
            if not wait:
                self.cancel(list(self._jobs), "controller shutting down")
        self._pool.shutdown(wait=wait)

    # -- internals ----------------------------------------------------------------------------------
    def _forget_reported(self, now: float) -> None:
        """Drop finished jobs reported long enough ago that no unfinished job still depends on."""
        needed = {d for j in self._jobs.values() if j.state not in _FINAL for d in j.request.depends_on}
        for jid, job in list(self._jobs.items()):
            if job.parent is not None:
                continue  # forgotten with its parent
            if (
                job.reported_at is not None
                and now - job.reported_at >= self.forget_after_seconds
                and jid not in needed
            ):
                del self._jobs[jid]
                for cid in job.children:
                    self._jobs.pop(cid, None)
                if self._by_name.get(job.request.name) == jid:
                    del self._by_name[job.request.name]

    def _status(self, job: _LocalJob) -> JobStatus:
        return JobStatus(
            job_id=job.job_id,
            name=job.request.name,
            state=job.state,
            exit_code=job.exit_code,
            reason=job.reason,
            log_stream=str(self._log_of(job)),
            created_at=job.created_at,
            started_at=job.started_at,
            stopped_at=job.stopped_at,
            # Ran here, once it ran at all: the row says so, and its cost is not a cloud bill.
            compute_environment="local" if job.started_at else None,
            capacity=Capacity.LOCAL if job.started_at else None,
        )

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _log_of(self, job: _LocalJob) -> Path:
        if job.array_index is None:
            return self.log_path(job.request.name)
        return self.log_dir / f"{job.request.name}.{job.array_index}.log"  # each child its own

    def _advance(self, job: _LocalJob) -> None:
        """Move a PENDING job on: fail it if an upstream failed, queue it when all upstreams succeeded."""
        if job.state != JobState.PENDING or job.children:
            return
        deps = [self._jobs[d] for d in job.request.depends_on]
        if any(d.state == JobState.FAILED for d in deps):
            self._finish(job, JobState.FAILED, None, "Dependent job failed")
        elif all(d.state == JobState.SUCCEEDED for d in deps):
            job.state = JobState.RUNNABLE
            self._pool.submit(self._run, job)

    def _run(self, job: _LocalJob) -> None:
        req = job.request
        with self._lock:
            if job.state != JobState.RUNNABLE:
                return
            job.state = JobState.RUNNING
            job.started_at = time.time()
            parent = self._jobs.get(job.parent) if job.parent else None
            if parent is not None and parent.state == JobState.PENDING:
                parent.state, parent.started_at = JobState.RUNNING, job.started_at
        env = dict(self.env)
        # The same variables Batch sets, so the worker logs and provenance carry the job id.
        env.update(
            {
                "AWS_BATCH_JOB_ID": job.job_id,
                "AWS_BATCH_JOB_ATTEMPT": str(job.attempt),
                "ALIGNBATCH_JOB_NAME": req.name,
                **(
                    {"AWS_BATCH_JOB_ARRAY_INDEX": str(job.array_index)} if job.array_index is not None else {}
                ),
            }
        )
        try:
            argv = [resolve_program(req.command[0]), *req.command[1:]]
            with open(self._log_of(job), "ab") as log:
                proc = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
                )
                with self._lock:
                    job.proc = proc
                    if job.cancelled:  # cancelled between RUNNING and Popen: stop it now
                        proc.send_signal(signal.SIGTERM)
                try:
                    code = proc.wait(timeout=req.timeout_seconds)
                except subprocess.TimeoutExpired:
                    proc.terminate()
                    code = proc.wait()
                    job.reason = f"Job attempt duration exceeded timeout ({req.timeout_seconds} s)"
        except (OSError, ExecutorError) as exc:
            with self._lock:
                self._finish(job, JobState.FAILED, None, f"could not start {req.command[0]}: {exc}")
            return
        with self._lock:
            if code == 0 and not job.cancelled:
                self._finish(job, JobState.SUCCEEDED, 0, "Essential container in task exited")
            else:
                why = job.reason or (f"Essential container in task exited (exit code {code})")
                strategy = child_retry_strategy(req.retry_attempts) if req.retry_attempts else None
                if strategy and not job.cancelled and should_retry(strategy, job.attempt, code, why):
                    # Another attempt of this job (or child) alone, as Batch's retry strategy gives.
                    job.attempt += 1
                    job.state, job.reason, job.proc = JobState.RUNNABLE, None, None
                    self._pool.submit(self._run, job)
                    return
                self._finish(job, JobState.FAILED, code, why)

    def _finish(self, job: _LocalJob, state: JobState, code: int | None, reason: str) -> None:
        job.state, job.exit_code, job.reason = state, code, reason
        job.stopped_at = time.time()
        job.proc = None
        for other in self._jobs.values():
            if job.job_id in other.request.depends_on:
                self._advance(other)
        parent = self._jobs.get(job.parent) if job.parent else None
        if parent is not None and parent.state not in _FINAL:
            self._settle_parent(parent)
        self._idle.notify_all()

    def _settle_parent(self, parent: _LocalJob) -> None:
        """An array parent ends when its children have: SUCCEEDED if all did, else FAILED."""
        children = [self._jobs[c] for c in parent.children if c in self._jobs]
        if any(c.state not in _FINAL for c in children):
            return
        failed = [c for c in children if c.state == JobState.FAILED]
        if failed:
            n = len(failed)
            self._finish(parent, JobState.FAILED, None, f"{n} of {len(children)} array children failed")
        else:
            self._finish(parent, JobState.SUCCEEDED, 0, "all array children succeeded")
