"""The finish stage's QC: a verdict in every row, then, after each table write, the history and the
batch report. finish.py calls two methods and nothing else:

    row.update(qc.verdict_columns(run, row))   # evaluate_run, once the summary row is read
    qc.publish()                               # flush_table, every pass (False: retry); it renders
                                               # when rows wait and report_interval_seconds have passed

What it writes:

    <ledger dir>/qc/history.parquet           the run history (controller.qc.history: flock + rename, so
                                              it lives on the controller's own disk, beside the ledger)
    <results root>/report/qc-YYYY-MM-DD.html  the batch report of one UTC day (through the object store:
                                              a local directory, or the results bucket)
    <results root>/report/latest.html         the same page for today, a stable link
    <results root>/report/history.parquet     a copy of the history for analysts

The verdict is pure and cheap (core.qc); the history and the page need the `report` extra (pyarrow,
jinja2, matplotlib), imported only here and only when publishing. Publishing never fails a run: an error
is logged (`qc.report_failed`) and the same rows are published again on the next pass; without the extra
it is logged once (`qc.report_unavailable`) and verdicts go on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import monotonic
from typing import TYPE_CHECKING, Any

from controller.ledger import Ledger, RunRow
from controller.qc.log_links import LogLinks
from controller.qc.metrics import QcMetrics
from controller.states import JobState, RunState
from core.locations import parse_location
from core.logs import get_logger
from core.objectstore import ObjectStore
from core.qc import Thresholds

if TYPE_CHECKING:
    from controller.qc.report_model import RunIssue

REPORT_DIR = "report"
LATEST = "latest.html"
# How many failed runs a day's page looks back through (newest first): the ledger has no time index.
ISSUE_SCAN_LIMIT = 5000


def report_uri(results_root: str, day: date | None = None) -> str:
    """Where the batch report of `day` (None: the stable latest.html) is written."""
    name = LATEST if day is None else f"qc-{day.isoformat()}.html"
    return str(parse_location(results_root, allow_prefix=True).join(f"{REPORT_DIR}/{name}"))


def _day_of(row: Mapping[str, Any]) -> date | None:
    text = row.get("written_at")
    if not isinstance(text, str) or not text:
        return None
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).astimezone(UTC).date()


@dataclass(frozen=True)
class Paths:
    results_root: str
    history: Path | None  # None: the ledger is in memory (tests), so there is nowhere local to keep it


class QcPublisher:
    def __init__(
        self,
        thresholds: Thresholds,
        *,
        ledger: Ledger,
        store: ObjectStore,
        metrics: QcMetrics,
        results_root: str,
        stuck_after_seconds: float = 12 * 3600,
        title: str = "alignbatch QC",
        min_interval_seconds: float = 0.0,
        clock: Callable[[], float] = monotonic,
        log_links: LogLinks | None = None,
    ) -> None:
        self.thresholds = thresholds
        self.ledger, self.store, self.metrics = ledger, store, metrics
        history = None if ledger.path == ":memory:" else Path(ledger.path).parent / "qc" / "history.parquet"
        self.paths = Paths(results_root, history)
        self.stuck_after_seconds = stuck_after_seconds
        self.title = title
        self.log = get_logger(component="qc")
        self.metrics.declare(a.name for a in thresholds.assays)
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, Any]] = {}  # run_id -> row with its verdict, not yet in history
        self._caught_up = False  # the ledger's rows are appended once per start (a crash loses none)
        self._unavailable = False
        self.min_interval_seconds = min_interval_seconds
        self.log_links = log_links or LogLinks()
        self._clock = clock
        self._rendered_at: float | None = None  # clock() of the last render
        self.renders = 0

    # -- the verdict (evaluate_run) -------------------------------------------------------------------
    def verdict_columns(self, run: RunRow, row: Mapping[str, Any]) -> dict[str, Any]:
        """The qc_* columns for a run's summary row; counts the verdict and keeps the row to publish."""
        verdict = self.thresholds.verdict(row, run.inbox_key)
        self.metrics.observe(verdict)
        columns = verdict.row_columns()
        self.log.info(
            "qc.verdict", run_id=run.run_id, sample=run.sample, key=run.key, assay=verdict.assay,
            verdict=str(verdict.level), failed=[f.describe() for f in verdict.failed],
        )  # fmt: skip
        with self._lock:
            self._pending[run.run_id] = {**row, **columns}
        return columns

    def table_columns(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The qc_* columns of a row read back from rows/ for the results table (not counted again: the
        verdict was counted when the run finished)."""
        return self.thresholds.verdict(row, str(row.get("inbox_key") or "")).row_columns()

    # -- history and report (flush_table) -------------------------------------------------------------
    def pending(self) -> int:
        """Rows with a verdict not yet in the history and the report."""
        with self._lock:
            return len(self._pending)

    def publish(self, now: datetime | None = None, *, force: bool = False) -> bool:
        """Append the rows finished since the last render to the history and re-render the pages of their
        days, unless the last render was under `min_interval_seconds` ago (then the rows wait; `force`
        renders anyway). True when done, deferred or nothing to do; False when it failed and should run
        again next pass."""
        if self.paths.history is None or self._unavailable:
            return True
        with self._lock:
            rows = list(self._pending.values())
        if not rows and self._caught_up:
            return True
        last = self._rendered_at
        if not force and last is not None and self._clock() - last < self.min_interval_seconds:
            return True  # deferred: flush_table calls again every pass, and a stop forces it
        now = now or datetime.now(UTC)
        try:
            from controller.qc import batch_report, history
        except ImportError as exc:  # the `report` extra is not installed: verdicts go on without pages
            self._unavailable = True
            self.log.warning(
                "qc.report_unavailable", error=str(exc),
                fix="pip install 'alignbatch[report]' for the QC history and batch report",
            )  # fmt: skip
            return True
        try:
            if not self._caught_up:
                # Rows whose verdict was computed before a crash are in the ledger, not in _pending.
                rows = [*self.ledger.result_rows(), *rows]
            history.append_rows(self.paths.history, rows)
            days = {d for d in map(_day_of, rows) if d is not None} | {now.date()}
            written = [self._write_day(batch_report, d, now) for d in sorted(days)]
            root = parse_location(self.paths.results_root, allow_prefix=True)
            self.store.write_bytes(
                root.join(f"{REPORT_DIR}/history.parquet"), self.paths.history.read_bytes(),
                content_type="application/vnd.apache.parquet",
            )  # fmt: skip
        except Exception as exc:  # never fails a run: logged, and the same rows go again next pass
            self.log.error("qc.report_failed", error=f"{type(exc).__name__}: {exc}", rows=len(rows))
            return False
        with self._lock:
            for row in rows:
                self._pending.pop(str(row.get("run_id", "")), None)
        self._caught_up = True
        self._rendered_at = self._clock()
        self.renders += 1
        self.log.info("qc.report_written", reports=written, history=str(self.paths.history), rows=len(rows))
        return True

    def _write_day(self, batch_report: Any, day: date, now: datetime) -> str:
        if self.paths.history is None:  # publish() writes days only when a history file is configured
            raise RuntimeError("no history file configured")
        start = datetime.combine(day, time(), tzinfo=UTC)
        end = start + timedelta(days=1)
        html = batch_report.render_from_history(
            self.paths.history, self.issues(start, min(end, now), now=now),
            period_start=start, period_end=end, title=f"{self.title} {day.isoformat()}",
        )  # fmt: skip
        body = html.encode("utf-8")
        uri = report_uri(self.paths.results_root, day)
        self.store.write_bytes(parse_location(uri), body, content_type="text/html; charset=utf-8")
        if day == now.date():
            latest = report_uri(self.paths.results_root)
            self.store.write_bytes(parse_location(latest), body, content_type="text/html; charset=utf-8")
        return uri

    # -- issues from the ledger -----------------------------------------------------------------------
    def issues(self, start: datetime, end: datetime, *, now: datetime) -> list[RunIssue]:
        """Runs of [start, end) without a row: failed (or lost) ones that finished in it, and, for a
        period that reaches now, runs still active after `stuck_after_seconds`."""
        from controller.qc.report_model import IssueKind, RunIssue

        lo, hi = start.timestamp(), end.timestamp()
        out: list[RunIssue] = []
        failed = self.ledger.runs(states=[RunState.FAILED], limit=ISSUE_SCAN_LIMIT)
        for run in failed:
            if run.finished_at is None or not lo <= run.finished_at < hi:
                continue
            job = self._bad_job(run.run_id)
            lost = job is not None and job.state == JobState.LOST
            out.append(
                RunIssue(
                    run.run_id, run.sample, run.inbox_key, IssueKind.LOST if lost else IssueKind.FAILED,
                    run.reason or "", since=datetime.fromtimestamp(run.finished_at, UTC),
                    step=job.step if job else "",
                    log_url=self.log_links.url(job.log_stream or "") if job else "",
                )
            )  # fmt: skip
        if end >= now - timedelta(seconds=1):
            limit = now.timestamp() - self.stuck_after_seconds
            for run in self.ledger.runs(states=[RunState.ACTIVE], limit=ISSUE_SCAN_LIMIT):
                if run.created_at < limit:
                    out.append(
                        RunIssue(
                            run.run_id, run.sample, run.inbox_key, IssueKind.STUCK,
                            f"active for {(now.timestamp() - run.created_at) / 3600:.1f} h",
                            since=datetime.fromtimestamp(run.created_at, UTC),
                        )
                    )  # fmt: skip
        return out

    def _bad_job(self, run_id: str) -> Any:
        for job in self.ledger.jobs_for_run(run_id):
            if job.state in (JobState.FAILED, JobState.LOST):
                return job
        return None


def stuck_after(tier_timeouts: Iterable[int]) -> float:
    """A run active for longer than its longest tier's timeout plus an hour of queueing is stuck."""
    return float(max(tier_timeouts, default=12 * 3600) + 3600)


def verdict_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Counts by verdict (for the terminal's closing line)."""
    out: dict[str, int] = {}
    for row in rows:
        level = str(row.get("qc_verdict") or "none")
        out[level] = out.get(level, 0) + 1
    return out
