"""The controller as the daemon, CLI and tests see it: one object whose methods are the loops. Each
method hands off to the stage that does the work, in the order an event travels:

    intake.py     poll, handle_message, handle_event   messages → events → runs in the ledger
    submit.py     submit_ready                         PLANNED jobs → the executor (two-phase)
    reconcile.py  reconcile                            executor states → ledger; ended runs → finish
                  poll_job_events                      Batch Job State Change events → ledger (forward only)
    finish.py     (from reconcile), cancel_run         run verdict, QC verdict, results table, report
    watch.py      check_runnable, refresh_gauges       RUNNABLE watchdog, gauges

`Controller` holds no scheduling logic (daemon.py runs these methods on APScheduler; `--once` calls them in
a plain loop) and no AWS specifics (those live behind the Inbox, executor, event source and object store).
Each method is safe to call from its own scheduler thread: the ledger serialises writes.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from prometheus_client import Gauge

from controller.array_submit import ArraySubmitter
from controller.backup import LedgerBackup
from controller.config import ControllerConfig, load_qc_thresholds
from controller.cost import price_table
from controller.events import MalformedMessage, ObjectEvent, parse_job_state_change
from controller.executors.base import Executor
from controller.finish import Finisher
from controller.inbox import Inbox, inbox_for
from controller.intake import Intake, PollResult
from controller.ledger import Ledger
from controller.metrics import Metrics
from controller.placement import QueuePolicy, local_policy
from controller.planner import PlanContext
from controller.qc.log_links import LogLinks
from controller.qc.publish import QcPublisher, stuck_after
from controller.reconcile import Reconciler
from controller.references import ReferenceCheck
from controller.sources.base import EventSource, Message
from controller.states import BATCH_ACTIVE, UNSUBMITTED
from controller.stopflag import StopFlag
from controller.submit import Submitter
from controller.watch import Watch
from core.logs import get_logger
from core.objectstore import ObjectStore
from core.qc import Thresholds

__all__ = ["Controller", "PollResult"]

# While the ledger cannot commit, how often intake tries a probe write (each poll tick would be 2/s).
LEDGER_PROBE_SECONDS = 5.0


def queue_policy(cfg: ControllerConfig) -> QueuePolicy:
    """The queues of `[batch]` in fallback order; local processes have none."""
    if cfg.is_local or not cfg.batch.queues:
        return local_policy()
    return QueuePolicy(
        queues=cfg.batch.queues,
        reclaims_before_fallback=cfg.batch.reclaims_before_fallback,
        max_reclaims=cfg.batch.max_reclaims,
    )


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
        state_source: EventSource | None = None,
        thresholds: Thresholds | None = None,
    ) -> None:
        self.cfg = cfg
        # Batch Job State Change events ([batch] events_enabled): None when reconcile alone follows jobs.
        self.state_source = state_source
        self.ledger = ledger
        self.executor = executor
        self.source = source
        self.metrics = metrics or Metrics()
        self.inbox = inbox or inbox_for(cfg)
        self.store = store or self.inbox.object_store()
        self.stopping = StopFlag()  # set by the daemon's signal handler: no locks (see stopflag)
        self.intake = Intake(
            cfg, ledger=ledger, inbox=self.inbox, store=self.store, source=source, metrics=self.metrics,
            stopping=self.stopping, io_threads=io_threads,
        )  # fmt: skip
        # The verdict rules: loaded (and checked: ConfigError, exit 78) here unless the caller has them.
        self.qc = QcPublisher(
            thresholds or load_qc_thresholds(cfg), ledger=ledger, store=self.store, metrics=self.metrics.qc,
            results_root=cfg.results_root,
            stuck_after_seconds=stuck_after(t.timeout_seconds for t in cfg.tiers),
            min_interval_seconds=cfg.qc.report_interval_seconds,
            log_links=LogLinks(
                cfg.aws.region or os.environ.get("AWS_REGION", ""), cfg.logging.job_log_group
            ),
        )  # fmt: skip
        self.finisher = Finisher(
            results_root=cfg.results_root, ledger=ledger, executor=executor, store=self.store,
            metrics=self.metrics, qc=self.qc, prices=price_table(cfg.cost),
        )  # fmt: skip
        # Spot fallback (controller.placement): the same policy picks each attempt's queue at submission
        # and decides at reconcile whether a reclaimed step is planned again.
        self.queues = queue_policy(cfg)
        self.submitter = Submitter(
            ledger=ledger, executor=executor, metrics=self.metrics, stopping=self.stopping,
            on_refused=self.finisher.evaluate_run, submit_threads=submit_threads,
            references=ReferenceCheck(self.store, cfg.results_root), queues=self.queues,
            arrays=ArraySubmitter(
                ledger=ledger, executor=executor, store=self.store, metrics=self.metrics,
                results_root=cfg.results_root, queues=self.queues, min_runs=cfg.batch.array_min_runs,
                max_size=cfg.batch.array_max_size,
            ),
        )  # fmt: skip
        self.reconciler = Reconciler(
            ledger=ledger, executor=executor, store=self.store, metrics=self.metrics, finisher=self.finisher,
            queues=self.queues,
        )  # fmt: skip
        self.watch = Watch(
            ledger=ledger, source=source, metrics=self.metrics,
            runnable_alarm_seconds=cfg.batch.runnable_alarm_seconds,
        )  # fmt: skip
        self._in_flight = self.intake.in_flight  # the messages being handled (extend_in_flight's set)
        self.ledger_writable_gauge = Gauge(
            "alignbatch_ledger_writable",
            "1 while the ledger commits; 0 while it cannot (intake stops receiving until it can)",
            registry=self.metrics.registry,
        )
        self.ledger_writable_gauge.set(1)
        self._next_probe = 0.0
        self.backup: LedgerBackup | None = None
        if ledger.path != ":memory:" and cfg.state.backup_seconds > 0:
            self.backup = LedgerBackup(
                ledger_path=ledger.path, store=self.store, results_root=cfg.results_root,
                registry=self.metrics.registry,
            )  # fmt: skip

    # -- intake -------------------------------------------------------------------------------------
    def poll(self, max_messages: int = 10) -> PollResult:
        """One intake pass — none while the ledger cannot commit: a message received then could only
        come back after its visibility timeout, one receive nearer the DLQ each time."""
        if not self.ledger_ready():
            self.metrics.loop_ok("poll")  # the loop is alive, deliberately paused (the watchdog's view)
            return PollResult()
        try:
            return self.intake.poll(max_messages)
        except sqlite3.OperationalError:
            # The ledger has flagged itself unwritable (ledger.unwritable logged); the batch's messages
            # come back after their visibility timeout. No receive until a probe write commits.
            self._next_probe = time.monotonic() + LEDGER_PROBE_SECONDS
            self.ledger_writable_gauge.set(0)
            return PollResult()

    def ledger_ready(self) -> bool:
        """The ledger can commit; while it cannot, try a probe write every LEDGER_PROBE_SECONDS."""
        if not self.ledger.writable and time.monotonic() >= self._next_probe:
            self._next_probe = time.monotonic() + LEDGER_PROBE_SECONDS
            self.ledger.probe_write()
        self.ledger_writable_gauge.set(1 if self.ledger.writable else 0)
        return self.ledger.writable

    def extend_in_flight(self) -> None:
        self.intake.extend_in_flight()

    def handle_message(self, msg: Message) -> bool:
        return self.intake.handle_message(msg)

    def handle_event(self, ev: ObjectEvent) -> str:
        return self.intake.handle_event(ev)

    def plan_context(self, key: str) -> PlanContext:
        return self.intake.plan_context(key)

    # -- submission, reconcile, finish --------------------------------------------------------------
    def submit_ready(self, limit: int = 500) -> int:
        return self.submitter.submit_ready(limit)

    def reconcile(self) -> int:
        return self.reconciler.reconcile()

    @property
    def reconcile_seconds(self) -> int:
        """How often reconcile runs: a slower sweep when state-change events keep the ledger current."""
        batch = self.cfg.batch
        return batch.events_sweep_seconds if self.state_source is not None else batch.reconcile_seconds

    def poll_job_events(self, max_messages: int = 10) -> int:
        """One receive from the state queue, applied to the ledger, then deleted; returns how many
        messages were received. A message that is not a state change, or cannot be parsed, is deleted too
        (logged and counted): reconcile's sweep describes any job whose event was lost. Nothing is
        deleted before the ledger committed it; while the ledger cannot commit, nothing is received."""
        if self.state_source is None or not self.ledger_ready():
            return 0
        messages = self.state_source.receive(max_messages)
        events = []
        for msg in messages:
            try:
                ev = parse_job_state_change(msg.body)
            except MalformedMessage as exc:
                get_logger(component="controller").warning(
                    "job_event.malformed", message_id=msg.message_id, error=str(exc), body=msg.body[:200]
                )
                self.reconciler.job_events.labels(outcome="malformed").inc()
                continue
            if ev is None:
                self.reconciler.job_events.labels(outcome="ignored").inc()
                continue
            events.append(ev)
        if events:
            self.reconciler.apply_job_events(events)
        if messages:
            self.state_source.ack(messages)
        self.metrics.loop_ok("job_events")
        return len(messages)

    def cancel_run(self, run_id: str, reason: str = "cancelled by operator") -> bool:
        return self.finisher.cancel_run(run_id, reason)

    def flush_reports(self) -> None:
        """The QC report with every row its rate limit held back (on stop and at the end of --once)."""
        self.finisher.flush_reports()

    def backup_ledger(self) -> int:
        """One ledger backup to the results store (controller.backup); 0 when backups are off."""
        return self.backup.run() if self.backup is not None else 0

    # -- watchdogs and gauges -----------------------------------------------------------------------
    def check_runnable(self) -> None:
        self.watch.check_runnable()

    def refresh_gauges(self) -> None:
        self.watch.refresh_gauges()

    @property
    def _runnable_flagged(self) -> set[str]:
        return self.watch.runnable_flagged

    # -- views --------------------------------------------------------------------------------------
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
