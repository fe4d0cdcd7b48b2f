"""DescribeJobs calls per N runs, reconcile polling alone vs. Batch Job State Change events + a sweep.

    python benchmarks/controller.py --events-mode [--counts 1000] [--reconcile-seconds 30]
        [--sweep-seconds 300] [--slots 200]

The real controller (Controller, ledger on disk, submit, reconcile with its held-by-upstream rule,
apply_job_events, finish) against a simulated Batch on a simulated clock: neither moto mode can answer this
(no-docker Batch ends every job inside SubmitJob, so one reconcile pass sees them all finished; the
process-running mode cannot run thousands of jobs with realistic durations on 2 cores), and moto emits no
EventBridge events. The simulated Batch honours dependsOn, runs at most `--slots` jobs at once (a compute
environment's capacity), moves each job SUBMITTED → PENDING → RUNNABLE → STARTING → RUNNING → SUCCEEDED
(index 120 s, alignstats 900 s, summary 60 s, 30 s starting) and counts DescribeJobs the way the Batch
executor calls it: one call per 100 job ids. In events mode it also emits one state-change event per
transition, delivered (10 per receive, like SQS) to `Reconciler.apply_job_events`, and reconcile runs every
`--sweep-seconds`; `--lose-events` drops that fraction of events so the sweep has work to do.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from controller.config import local_config
from controller.events import JobStateEvent, ObjectEvent
from controller.executors.base import FoundJob, JobStatus, SubmitRequest
from controller.ledger import Ledger
from controller.metrics import Metrics
from controller.service import Controller
from controller.states import RunState
from core.logs import configure_logging

DURATION = {"index": 120.0, "alignstats": 900.0, "summary": 60.0}
STARTING_SECONDS = 30.0


@dataclass
class SimJob:
    job_id: str
    name: str
    step: str
    depends_on: tuple[str, ...]
    output: str | None = None  # the summary's row file, written when it succeeds (finish reads it)
    state: str = "SUBMITTED"
    since: float = 0.0


@dataclass
class SimBatch:
    """Batch on a simulated clock; implements the Executor protocol."""

    slots: int
    now: float = 0.0
    jobs: dict[str, SimJob] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    describe_calls: int = 0
    events: list[JobStateEvent] = field(default_factory=list)
    kind: str = "simulated-batch"
    missing_grace_seconds: float = 120.0
    requeue_missing: bool = False
    submits_while_stopping: bool = False

    def submit(self, request: SubmitRequest) -> str:
        job_id = f"sim-{len(self.jobs)}"
        cmd = list(request.command)
        output = cmd[cmd.index("--output") + 1] if request.step == "summary" and "--output" in cmd else None
        self.jobs[job_id] = SimJob(
            job_id, request.name, request.step, request.depends_on, output, since=self.now
        )
        self.order.append(job_id)
        self._event(self.jobs[job_id])
        return job_id

    def _event(self, job: SimJob) -> None:
        self.events.append(
            JobStateEvent(job.job_id, job.name, job.state, None, 0 if job.state == "SUCCEEDED" else None,
                          None, None, None, None)
        )  # fmt: skip

    def _move(self, job: SimJob, state: str) -> None:
        job.state, job.since = state, self.now
        self._event(job)

    def advance(self, now: float) -> None:
        self.now = now
        running = sum(1 for j in self.jobs.values() if j.state in ("STARTING", "RUNNING"))
        for job_id in self.order:
            job = self.jobs[job_id]
            if job.state == "SUBMITTED":
                self._move(job, "PENDING")
            elif job.state == "PENDING":
                if all(self.jobs[d].state == "SUCCEEDED" for d in job.depends_on if d in self.jobs):
                    self._move(job, "RUNNABLE")
            elif job.state == "RUNNABLE" and running < self.slots:
                running += 1
                self._move(job, "STARTING")
            elif job.state == "STARTING" and now - job.since >= STARTING_SECONDS:
                self._move(job, "RUNNING")
            elif job.state == "RUNNING" and now - job.since >= DURATION.get(job.step, 60.0):
                running -= 1
                if job.output:
                    Path(job.output).parent.mkdir(parents=True, exist_ok=True)
                    Path(job.output).write_text(json.dumps({"sample": job.name}))
                self._move(job, "SUCCEEDED")
        self.order = [i for i in self.order if self.jobs[i].state != "SUCCEEDED"]

    def describe(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        self.describe_calls += math.ceil(len(job_ids) / 100)
        return {i: JobStatus(i, self.jobs[i].name, self.jobs[i].state) for i in job_ids if i in self.jobs}

    def find_by_name(self, name: str) -> JobStatus | None:
        return None

    def cancel(self, job_ids: Iterable[str], reason: str) -> None:
        return None

    def discover(self, name_pattern: str) -> list[FoundJob]:
        return []

    def active_count(self) -> int:
        return 0

    def close(self, *, wait: bool) -> None:
        return None


def describe_calls_case(
    n: int, *, events: bool, reconcile_seconds: int, sweep_seconds: int, slots: int, lose: float = 0.0
) -> dict[str, float]:
    """Runs N objects to the end; returns DescribeJobs calls, events applied, simulated hours."""
    configure_logging(level="WARNING", json=False)  # a line per run would swamp the figures
    rng = random.Random(14)
    with tempfile.TemporaryDirectory(prefix="ab-describe-") as tmp:
        cfg = local_config(Path(tmp))
        batch = SimBatch(slots=slots)
        ctl = Controller(cfg, ledger=Ledger(Path(tmp) / "state.db"), executor=batch, source=None,
                         metrics=Metrics())  # fmt: skip
        for i in range(n):
            ctl.handle_event(ObjectEvent(cfg.inbox_root, f"s{i}.bam", 10, f"{i}-1", None, "ObjectCreated:Put",
                                         datetime.now(UTC)))  # fmt: skip
        interval = sweep_seconds if events else reconcile_seconds
        now, applied = 0, 0
        while True:
            ctl.submit_ready()
            batch.advance(float(now))
            if events:
                delivered = [e for e in batch.events if rng.random() >= lose]
                for i in range(0, len(delivered), 10):
                    applied += ctl.reconciler.apply_job_events(delivered[i : i + 10])
            batch.events.clear()
            if now % interval == 0:
                ctl.reconcile()
            if ctl.ledger.run_counts()[RunState.ACTIVE] == 0 or now > 48 * 3600:
                break
            now += 1
        counts = ctl.ledger.run_counts()
        return {
            "runs": n, "describe_calls": batch.describe_calls, "events_applied": applied,
            "hours": now / 3600, "finished": n - counts[RunState.ACTIVE],
        }  # fmt: skip
