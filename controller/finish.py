"""Finishing, the last stage: a run's verdict once all its jobs have ended, and the results table.

A failed or lost job fails its run (its pending jobs are cancelled, with the reason); when every job
succeeded, the summary row is read back and upserted into the ledger's results (latest run per inbox
key wins), and the combined table under `<results root>/table/` is rewritten on the next flush — from
the rows under `<results root>/rows/` (controller.results_rows), not from the ledger, so a ledger that
is new or restored from an older backup never shrinks the table.
"""

from __future__ import annotations

import json
import threading
import time

from controller.config import CostConfig
from controller.cost import PriceTable, price_table
from controller.executors.base import Executor, ExecutorError
from controller.ledger import Ledger
from controller.metrics import Metrics
from controller.model import Step
from controller.qc.publish import QcPublisher
from controller.results_rows import RowIndex
from controller.results_table import write_table
from controller.run_usage import execution_columns
from controller.states import JOB_BAD, JOB_TERMINAL, JobState, RunState
from core.errors import TransientIOError, WorkerError
from core.locations import LocationError, parse_location
from core.logs import get_logger
from core.objectstore import ObjectStore


class Finisher:
    def __init__(
        self, *, results_root: str, ledger: Ledger, executor: Executor, store: ObjectStore, metrics: Metrics,
        qc: QcPublisher, prices: PriceTable | None = None,
    ) -> None:  # fmt: skip
        self.results_root = results_root
        self.ledger, self.executor, self.store, self.metrics, self.qc = ledger, executor, store, metrics, qc
        self.log = get_logger(component="controller")
        self._table_dirty = threading.Event()
        # Dirty from the start: the first flush after a start rebuilds the table from rows/ (a new or
        # restored ledger may know fewer runs than the results bucket holds).
        self._table_dirty.set()
        self.rows = RowIndex(store, results_root, annotate=qc.table_columns)
        self.prices = prices or price_table(CostConfig())

    def evaluate_run(self, run_id: str) -> None:
        """Decide an active run whose jobs have all ended; nothing while any job is still to run."""
        run = self.ledger.get_run(run_id)
        if run is None or run.state != RunState.ACTIVE:
            return
        jobs = self.ledger.jobs_for_run(run_id)
        bad = [j for j in jobs if j.state in JOB_BAD]
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
        if not jobs or any(j.state != JobState.SUCCEEDED for j in jobs):
            return
        try:
            row = json.loads(self.store.read_bytes(parse_location(run.row_uri or "")))
            if not isinstance(row, dict):
                raise ValueError("row is not a JSON object")
        except TransientIOError as exc:
            # S3 503 / network after botocore's retries: the row is most likely there. The run stays
            # active and the next reconcile pass (its sweep of finishable runs) reads it again.
            log.warning("run.finish_deferred", reason=f"summary row not read yet: {exc}", key=run.key)
            return
        except (WorkerError, LocationError, ValueError) as exc:
            if self.ledger.finish_run(run_id, RunState.FAILED, f"summary row unreadable: {exc}"):
                self.metrics.runs.labels(outcome="failed").inc()
                log.error("run.failed", reason=f"summary row unreadable: {exc}")
            return
        # Where it ran and what it cost (controller/run_usage.py), written back into the run's own row so
        # the table, rebuilt from rows/, has them: the run waits for the next pass if that write fails.
        row.update(execution_columns(jobs, self.prices))
        try:
            body = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
            self.store.write_bytes(parse_location(run.row_uri or ""), body, content_type="application/json")
        except (WorkerError, LocationError) as exc:
            log.warning("run.finish_deferred", reason=f"summary row not updated yet: {exc}", key=run.key)
            return
        row.update(self.qc.verdict_columns(run, row))  # QC verdict columns (controller/qc/publish.py)
        labels = {"pipeline": str(row.get("pipeline_version") or ""), "assay": str(row.get("qc_assay") or "")}
        self.metrics.cost_usd.labels(**labels).inc(float(row["est_cost_usd"]))
        self.metrics.vcpu_seconds.labels(**labels).inc(float(row["vcpu_seconds"]))
        self.metrics.costed_runs.labels(**labels).inc()
        now = time.time()
        self.ledger.record_output(run_id, "row", run.row_uri or "")
        for j in jobs:
            if j.step == Step.INDEX:
                self.ledger.record_output(run_id, "index", j.job_spec.outputs[0])
        self.ledger.upsert_result(run.inbox_key, run_id, now, row)
        self._table_dirty.set()
        if self.ledger.finish_run(run_id, RunState.SUCCEEDED):
            self.metrics.runs.labels(outcome="succeeded").inc()
            self.metrics.input_bytes.inc(run.size)
            summary = next((j for j in jobs if j.step == Step.SUMMARY), None)
            written = (summary.stopped_at if summary and summary.stopped_at else None) or now
            if run.event_time:
                self.metrics.end_to_end.observe(max(0.0, written - run.event_time))
            log.info("run.succeeded", report=run.report_uri, row=run.row_uri, key=run.key)

    def flush_table(self) -> None:
        """Rewrite the combined table when a run succeeded since the last flush (retried on failure);
        the QC report follows at its own pace (controller/qc/publish.py)."""
        if not self._table_dirty.is_set():
            if self.qc.pending() and not self.qc.publish():  # rows the report's interval held back
                self._table_dirty.set()
            return
        self._table_dirty.clear()
        try:
            rows = self.rows.refresh()
            if not rows:
                return  # nothing finished yet anywhere: no empty table
            csv_uri, jsonl_uri = write_table(self.store, self.results_root, rows)
            self.log.info("table.written", csv=csv_uri, jsonl=jsonl_uri, rows=len(rows))
            if not self.qc.publish():  # QC history and batch report; a failure is retried next pass
                self._table_dirty.set()
        except (WorkerError, LocationError) as exc:
            self._table_dirty.set()
            self.log.error("table.write_failed", error=str(exc))

    def flush_reports(self) -> None:
        """Render the QC report now with whatever rows wait (a stop, the end of `run --once`)."""
        self.qc.publish(force=True)

    def cancel_run(self, run_id: str, reason: str = "cancelled by operator") -> bool:
        jobs = self.ledger.jobs_for_run(run_id)
        ids = [j.job_id for j in jobs if j.job_id and j.state not in JOB_TERMINAL]
        if ids:
            self.executor.cancel(ids, reason)
        for j in jobs:
            if j.state not in JOB_TERMINAL:
                self.ledger.update_job(run_id, j.step, state=JobState.CANCELLED, reason=reason)
        return self.ledger.finish_run(run_id, RunState.CANCELLED, reason)
