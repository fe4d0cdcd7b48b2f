"""Prometheus metrics (names and labels exactly as COMMON §5) and the /metrics /healthz /readyz endpoint.

Each controller owns its own CollectorRegistry, so several controllers (tests) can live in one process.
No label ever carries a sample, run or job id: cardinality stays bounded by steps, states and outcomes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    make_wsgi_app,
)

from controller.model import Step
from controller.qc.metrics import QcMetrics
from controller.states import BATCH_ACTIVE, JobState
from core.version import __version__

EVENT_OUTCOMES = ("accepted", "duplicate", "ignored", "index_recorded", "test_event", "malformed")
RUN_OUTCOMES = ("created", "succeeded", "failed")
COMPLETION_OUTCOMES = ("succeeded", "failed", "lost")
STEPS: tuple[str, ...] = tuple(str(s) for s in Step)
# The states a dashboard shows: Batch's own (ours - PLANNED, INTENT, LOST, CANCELLED - are in `status`).
JOB_GAUGE_STATES: tuple[str, ...] = tuple(
    str(s) for s in (*BATCH_ACTIVE, JobState.SUCCEEDED, JobState.FAILED)
)
LOOPS = ("poll", "reconcile", "runnable", "gauges")
DURATION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 57600)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # `*_created` series double the exposition for no operational value.
        disable_created_metrics()
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter("alignbatch_events", "Inbox events by outcome", ["outcome"], registry=r)
        self.runs = Counter("alignbatch_runs", "Pipeline runs by outcome", ["outcome"], registry=r)
        self.submissions = Counter(
            "alignbatch_job_submissions",
            "Job submissions by step and outcome",
            ["step", "outcome"],
            registry=r,
        )
        self.completions = Counter(
            "alignbatch_job_completions", "Finished jobs by step and outcome", ["step", "outcome"], registry=r
        )
        self.throttled = Counter("alignbatch_throttled_calls", "Throttled AWS API calls", ["api"], registry=r)
        self.reconcile_jobs = Counter(
            "alignbatch_reconcile_jobs",
            "Active jobs per reconcile pass: described, or held (upstream still active, not described)",
            ["outcome"],
            registry=r,
        )
        self.jobs = Gauge("alignbatch_jobs", "Jobs known to the ledger by state", ["state"], registry=r)
        self.queue_messages = Gauge(
            "alignbatch_queue_messages", "SQS messages by queue and kind", ["queue", "kind"], registry=r
        )
        self.oldest_runnable = Gauge(
            "alignbatch_oldest_runnable_age_seconds", "Age of the oldest job in RUNNABLE", registry=r
        )
        self.job_duration = Histogram(
            "alignbatch_job_duration_seconds",
            "Job run time by step",
            ["step"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "alignbatch_end_to_end_latency_seconds",
            "S3 event time to summary row written",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.input_bytes = Counter("alignbatch_input_bytes", "Bytes of input processed", registry=r)
        # Cost per sample (controller.cost): estimated USD, requested vCPU-seconds and the runs they came
        # from, by pipeline version and QC assay; cost per sample = increase(cost) / increase(runs).
        self.cost_usd = Counter(
            "alignbatch_cost_usd", "Estimated cost of succeeded runs ([cost] prices)", ["pipeline", "assay"],
            registry=r,
        )  # fmt: skip
        self.vcpu_seconds = Counter(
            "alignbatch_vcpu_seconds", "Requested vCPU-seconds of succeeded runs, every attempt",
            ["pipeline", "assay"], registry=r,
        )  # fmt: skip
        self.costed_runs = Counter(
            "alignbatch_costed_runs", "Succeeded runs whose cost was added to alignbatch_cost_usd_total",
            ["pipeline", "assay"], registry=r,
        )  # fmt: skip
        self.build_info = Gauge("alignbatch_build_info", "Build information", ["version"], registry=r)
        self.loop_last_success = Gauge(
            "alignbatch_loop_last_success_timestamp_seconds",
            "When each controller loop last completed without error",
            ["loop"],
            registry=r,
        )
        # alignbatch_qc_verdicts_total{assay, verdict}; its assays are declared once thresholds load.
        self.qc = QcMetrics(r)
        self.build_info.labels(version=__version__).set(1)
        # Pre-create the label sets so dashboards and alerts see zeros rather than absent series.
        for o in EVENT_OUTCOMES:
            self.events.labels(outcome=o)
        for o in RUN_OUTCOMES:
            self.runs.labels(outcome=o)
        for s in STEPS:
            self.submissions.labels(step=s, outcome="submitted")
            self.submissions.labels(step=s, outcome="error")
            self.job_duration.labels(step=s)
            for o in COMPLETION_OUTCOMES:
                self.completions.labels(step=s, outcome=o)
        for st in JOB_GAUGE_STATES:
            self.jobs.labels(state=st).set(0)
        for o in ("described", "held"):
            self.reconcile_jobs.labels(outcome=o)
        self.oldest_runnable.set(0)

    def loop_ok(self, loop: str) -> None:
        self.loop_last_success.labels(loop=loop).set(time.time())


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None  # scrapes every few seconds would drown the JSON logs


class MetricsServer:
    """Serves /metrics, /healthz (the main loop is alive) and /readyz (started and loops healthy)."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        address: str = "127.0.0.1",
        port: int = 9464,
        healthy: Callable[[], bool] = lambda: True,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.metrics_app = make_wsgi_app(metrics.registry)
        self.healthy = healthy
        self.ready = ready
        self.server = make_server(address, port, self._app, _ThreadingWSGIServer, handler_class=_QuietHandler)
        self.port = int(self.server.server_port)
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics-http", daemon=True)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/healthz", "/readyz"):
            ok = self.healthy() if path == "/healthz" else self.ready()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n" if ok else b"not ok\n"]
        if path == "/metrics" or path == "/":
            return self.metrics_app(environ, start_response)  # type: ignore[no-any-return]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
