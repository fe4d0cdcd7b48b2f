"""Daemon wiring: build the controller for a mode, run its loops on APScheduler, handle SIGTERM, talk to
systemd (READY=1, WATCHDOG=1 from the main loop, STATUS=counts, STOPPING=1).

Loops (all `max_instances=1, coalesce=True`, so a slow pass is never stacked):
    poll        receive ≤10 messages (20 s long-poll on SQS), commit, delete; wake `submit`
    submit      submit ready jobs (woken by poll; every 2 s for retries and intents after a crash)
    reconcile   DescribeJobs for in-flight jobs (batches of 100), finish runs, write the results table;
                every [batch] events_sweep_seconds instead when state-change events are on
    job_events  ([batch] events_enabled) receive Batch Job State Change events, apply them, delete
    backup      the ledger to <results>/ledger/backup.sqlite.gz every [state] backup_seconds
    extend      extend the visibility of messages still being processed
    runnable    flag jobs RUNNABLE longer than [batch] runnable_alarm_seconds; oldest-RUNNABLE gauge
    gauges      jobs-by-state and SQS depth gauges
The main thread only supervises: it pets the watchdog while the loops report success, so a wedged loop
gets the unit restarted by systemd.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from controller.factory import build_controller, mode_for
from controller.metrics import MetricsServer
from controller.service import Controller
from controller.stopflag import StopFlag
from controller.systemd import notify, watchdog_interval
from core.logs import get_logger

__all__ = ["Daemon", "build_controller", "human_summary", "start_metrics"]

# How soon the main thread notices a stop request (the signal handler only raises a flag).
STOP_CHECK_SECONDS = 0.2


class _QuietSkips(logging.Filter):
    """APScheduler logs a warning each time a tick finds the previous pass still running; with a 20 s
    long poll on a 1 s interval that is expected, not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return "maximum number of running instances" not in msg and "was missed by" not in msg


class Daemon:
    def __init__(self, controller: Controller, *, metrics_server: MetricsServer | None = None) -> None:
        self.ctl = controller
        self.cfg = controller.cfg
        self.metrics_server = metrics_server
        self.stop = StopFlag()
        self.log = get_logger(component="daemon")
        self.heartbeat = time.time()
        self.started = False
        self._sched: Any = None
        # _wake and the scheduler's shutdown must not overlap (see _close_scheduler)
        self._wake_lock = threading.Lock()
        self._closing = False

    # -- health -------------------------------------------------------------------------------------
    def healthy(self) -> bool:
        return time.time() - self.heartbeat < 60

    def loops_healthy(self) -> bool:
        """Every loop has succeeded recently (poll within a few long-poll periods)."""
        if not self.started:
            return False
        now = time.time()
        limits = {
            "poll": max(120, 4 * self.cfg.queue.wait_seconds),
            "reconcile": max(300, 5 * self.ctl.reconcile_seconds),
        }
        if self.ctl.state_source is not None:
            limits["job_events"] = max(120, 4 * self.cfg.queue.wait_seconds)
        for loop, limit in limits.items():
            last = self.ctl.metrics.loop_last_success.labels(loop=loop)._value.get()
            if now - (last or 0) > limit:
                return False
        return True

    def ready(self) -> bool:
        """/readyz: the loops succeed and the ledger can commit (intake is paused while it cannot)."""
        return self.loops_healthy() and self.ctl.ledger.writable

    def install_signals(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            # Flag stores only: no log line, no Event.set() (see controller.stopflag). The main loop
            # notices within STOP_CHECK_SECONDS and logs the signal.
            reason = signal.Signals(signum).name
            self.stop.set(reason)
            self.ctl.stopping.set(reason)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        # `systemctl kill -s USR1 alignbatch-controller`: every thread's stack to stderr (the journal),
        # without stopping the daemon - how to see where a wedged loop or a slow shutdown is waiting.
        faulthandler.register(signal.SIGUSR1, all_threads=True)

    # -- passes -------------------------------------------------------------------------------------
    def _guard(self, name: str, fn: Any) -> Any:
        def run() -> None:
            try:
                fn()
            except Exception as exc:  # a loop error is logged and retried next tick; never kills the daemon
                self.log.error("loop.error", loop=name, error=f"{type(exc).__name__}: {exc}")

        return run

    def _poll(self) -> None:
        # Keep going while messages arrive (a burst of uploads), but return now and then so the
        # scheduler's bookkeeping and the shutdown check stay responsive.
        for _ in range(50):
            result = self.ctl.poll()
            if result.acked:
                self._wake("submit")
            if not result.received or self.stop.is_set():
                break

    def _poll_job_events(self) -> None:
        for _ in range(50):  # as _poll: drain a burst, but return now and then
            if not self.ctl.poll_job_events() or self.stop.is_set():
                break

    def _wake(self, job_id: str) -> None:
        """Run a loop now instead of at its next tick. The poll loop does not submit itself: a submission
        pass lasts as long as the token bucket makes it (3 jobs per object), and polling must go on
        meanwhile so messages are committed and deleted promptly. A pass already running picks the new
        runs up before it returns (max_instances=1 skips the extra run)."""
        from apscheduler.jobstores.base import JobLookupError

        with self._wake_lock:
            if self._sched is None or self._closing:
                return
            with contextlib.suppress(JobLookupError):
                self._sched.modify_job(job_id, next_run_time=datetime.now(UTC))

    def _close_scheduler(self) -> None:
        """Stop the loops, letting a pass in progress (e.g. a batch of messages) finish.

        APScheduler's shutdown(wait=True) holds its job-store lock while it waits for running passes,
        and modify_job needs that lock: a poll pass that woke the submit loop after shutdown began
        waited for it forever, and systemd killed the controller at its stop timeout. So no wake is
        started once closing is set, and one in progress finishes before shutdown begins.
        """
        with self._wake_lock:
            self._closing = True
        self._sched.pause_job("poll")
        self._sched.shutdown(wait=True)

    # -- modes --------------------------------------------------------------------------------------
    def run_once(self, *, max_seconds: float | None = None) -> int:
        """Drain the inbox, run everything to the end, exit (for scripts, tests and `make demo`)."""
        self.started = True
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        notify("READY=1")
        quiet_passes = 0
        while not self.stop.is_set():
            self.heartbeat = time.time()
            received = self._step(lambda: self.ctl.poll().received, "poll") or 0
            received += self._step(self.ctl.poll_job_events, "job_events") or 0
            self._step(self.ctl.submit_ready, "submit")
            changes = self._step(self.ctl.reconcile, "reconcile") or 0
            unsettled = self.ctl.source.unsettled if self.ctl.source is not None else 0
            if received == 0 and unsettled == 0 and self.ctl.idle():
                quiet_passes += 1
                if quiet_passes >= 2:
                    break
            else:
                quiet_passes = 0
            if deadline is not None and time.monotonic() > deadline:
                self.log.error("daemon.once_timeout", seconds=max_seconds)
                break
            if not received and not changes:
                time.sleep(STOP_CHECK_SECONDS)
        if self.stop.is_set():
            self.log.info("daemon.stopping", reason=self.stop.reason or "requested")
        self._shutdown()
        return 0

    def _step(self, fn: Any, name: str) -> Any:
        try:
            return fn()
        except Exception as exc:
            self.log.error("loop.error", loop=name, error=f"{type(exc).__name__}: {exc}")
            return None

    def run_forever(self) -> int:
        from apscheduler.schedulers.background import BackgroundScheduler

        mode = mode_for(self.cfg)
        for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
            logging.getLogger(name).addFilter(_QuietSkips())
        sched = BackgroundScheduler(
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30}, timezone="UTC"
        )
        self._sched = sched
        # The loops /readyz watches run once at start, not one interval after it: a daemon whose first
        # reconcile is 30 s away (a restart with jobs in flight) is neither caught up nor ready.
        now = datetime.now(UTC)
        sched.add_job(self._guard("poll", self._poll), "interval", seconds=0.5, id="poll", next_run_time=now)
        sched.add_job(self._guard("submit", self.ctl.submit_ready), "interval", seconds=2, id="submit")
        sched.add_job(
            self._guard("reconcile", self.ctl.reconcile), "interval",
            seconds=self.ctl.reconcile_seconds,
            id="reconcile", next_run_time=now,
        )  # fmt: skip
        if self.ctl.state_source is not None:
            sched.add_job(
                self._guard("job_events", self._poll_job_events), "interval", seconds=0.5,
                id="job_events", next_run_time=now,
            )  # fmt: skip
        sched.add_job(
            self._guard("extend", self.ctl.extend_in_flight), "interval",
            seconds=max(10, self.cfg.queue.visibility_timeout // 3), id="extend",
        )  # fmt: skip
        sched.add_job(self._guard("runnable", self.ctl.check_runnable), "interval", seconds=30, id="runnable")
        if self.ctl.backup is not None:
            sched.add_job(
                self._guard("backup", self.ctl.backup_ledger), "interval",
                seconds=self.cfg.state.backup_seconds, id="backup",
            )  # fmt: skip
        sched.add_job(
            self._guard("gauges", self.ctl.refresh_gauges),
            "interval",
            seconds=mode.gauge_seconds,
            id="gauges",
        )
        sched.start()
        self.started = True
        self._guard("gauges", self.ctl.refresh_gauges)()
        notify("READY=1")
        self.log.info("daemon.ready", mode=mode.name, status=self.ctl.status_line())
        beat = min(1.0, watchdog_interval() or 10.0)
        last_status = ""
        next_beat = 0.0
        while not self.stop.is_set():
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + beat
                self.heartbeat = time.time()
                if self.loops_healthy():
                    notify("WATCHDOG=1")
                status = self.ctl.status_line()
                if status != last_status:
                    notify(f"STATUS={status}")
                    last_status = status
            time.sleep(STOP_CHECK_SECONDS)
        self.ctl.stopping.set(self.stop.reason)
        notify("STOPPING=1")
        self.log.info("daemon.stopping", reason=self.stop.reason or "requested")
        self._close_scheduler()
        self._shutdown()
        self._step(self.ctl.backup_ledger, "backup")  # the recovery point of a planned stop: none lost
        return 0

    def _shutdown(self) -> None:
        ex = self.ctl.executor
        if ex.active_count():
            self.log.info("daemon.waiting_for_jobs", jobs=ex.active_count())
        ex.close(wait=True)
        # Record what finished while we waited, then write the table one last time.
        self._step(self.ctl.reconcile, "reconcile")
        self._step(self.ctl.flush_reports, "qc_report")  # rows the report's interval held back
        self._step(self.ctl.refresh_gauges, "gauges")
        self.log.info("daemon.stopped", status=self.ctl.status_line())


def human_summary(ctl: Controller) -> str:
    """The closing lines of `run --once` for a person at a terminal."""
    from controller.results_table import table_locations

    runs = ctl.ledger.run_counts()
    jobs = ctl.ledger.job_counts()
    csv_uri, jsonl_uri = table_locations(ctl.cfg.results_root)
    lines = [
        "",
        "alignbatch: inbox drained.",
        f"  runs:    {runs['succeeded']} succeeded, {runs['failed']} failed, {runs['rejected']} rejected, "
        f"{runs['active']} still active, {runs['cancelled']} cancelled",
        "  jobs:    " + ", ".join(f"{n} {s.lower()}" for s, n in jobs.items() if n),
        f"  reports: {ctl.cfg.results_root}/reports/",
        f"  table:   {csv_uri}",
        f"           {jsonl_uri}",
        f"  ledger:  {ctl.cfg.state.ledger_path}",
    ]
    failures = ctl.ledger.recent_failures(limit=5)
    if failures:
        lines.append("  failures:")
        for run, job in failures:
            where = f" (log: {job.log_stream})" if job and job.log_stream else ""
            lines.append(f"    {run.key}: {run.reason}{where}")
    where = mode_for(ctl.cfg).where
    lines.append(f"  details: alignbatch-controller status {where}   (runs {where} --json)")
    return "\n".join(lines) + "\n"


def start_metrics(ctl: Controller, daemon: Daemon, address: str, port: int) -> MetricsServer | None:
    if port == 0:
        return None
    try:
        server = MetricsServer(
            ctl.metrics, address=address, port=port, healthy=daemon.healthy, ready=daemon.ready
        ).start()
    except OSError as exc:
        print(
            f"alignbatch-controller: cannot serve metrics on {address}:{port}: {exc.strerror}",
            file=sys.stderr,
        )
        raise SystemExit(75) from None
    daemon.metrics_server = server
    get_logger(component="daemon").info("metrics.serving", address=address, port=server.port)
    return server
