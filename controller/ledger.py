"""The controller's durable truth: one SQLite file in WAL mode.

Tables (created on first open; `schema_version` in `meta`):
- `runs`     one pipeline run per object identity (bucket, key, versionId-or-ETag), UNIQUE on it, so a
             duplicate delivery can never create a second run. State: active → succeeded | failed |
             cancelled; `rejected` for objects that cannot be planned (reason says why).
- `jobs`     one row per (run, step): deterministic name, Batch/local job id, state, attempts, exit code,
             status reason, log stream, timestamps, and the planned spec (JSON). Submission is two-phase:
             PLANNED → INTENT (committed before SubmitJob) → SUBMITTED with the job id (committed after).
             An INTENT row without a job id after a crash is resolved by looking the name up in the executor.
- `outputs`  objects a run produced (report, row, index).
- `index_objects`  index files that arrived in the inbox (they satisfy the index step of a later object).
- `results`  the latest summary row per inbox key; the combined results table is rendered from it.

Every public method is one transaction; the connection is shared between the scheduler's threads
behind a lock (SQLite serialises writers anyway, and our transactions are short).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from controller.planner import InputObject, JobSpec, Plan, job_name

SCHEMA_VERSION = 1

# Job states: Batch's own plus our bookkeeping states.
PLANNED = "PLANNED"
INTENT = "INTENT"
SUBMITTED = "SUBMITTED"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
LOST = "LOST"
CANCELLED = "CANCELLED"
BATCH_ACTIVE = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
JOB_TERMINAL = (SUCCEEDED, FAILED, LOST, CANCELLED)
JOB_STATES = (PLANNED, INTENT, *BATCH_ACTIVE, *JOB_TERMINAL)

RUN_ACTIVE = "active"
RUN_SUCCEEDED = "succeeded"
RUN_FAILED = "failed"
RUN_CANCELLED = "cancelled"
RUN_REJECTED = "rejected"
RUN_STATES = (RUN_ACTIVE, RUN_SUCCEEDED, RUN_FAILED, RUN_CANCELLED, RUN_REJECTED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    etag TEXT NOT NULL,
    version_id TEXT,
    size INTEGER NOT NULL,
    sample TEXT NOT NULL,
    input_uri TEXT NOT NULL,
    inbox_key TEXT NOT NULL,
    report_uri TEXT,
    row_uri TEXT,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    reason TEXT,
    event_time REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    UNIQUE (bucket, key, version)
);
CREATE INDEX IF NOT EXISTS runs_state ON runs (state);
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    step TEXT NOT NULL,
    name TEXT NOT NULL,
    job_id TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    reason TEXT,
    log_stream TEXT,
    spec TEXT NOT NULL,
    intent_at REAL,
    submitted_at REAL,
    started_at REAL,
    stopped_at REAL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE INDEX IF NOT EXISTS jobs_job_id ON jobs (job_id);
CREATE TABLE IF NOT EXISTS outputs (
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    uri TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (run_id, kind)
);
CREATE TABLE IF NOT EXISTS index_objects (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (bucket, key)
);
CREATE TABLE IF NOT EXISTS results (
    inbox_key TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    finished_at REAL NOT NULL,
    row TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class RunRow:
    run_id: str
    bucket: str
    key: str
    version: str
    etag: str
    version_id: str | None
    size: int
    sample: str
    input_uri: str
    inbox_key: str
    report_uri: str | None
    row_uri: str | None
    state: str
    attempt: int
    reason: str | None
    event_time: float | None
    created_at: float
    updated_at: float
    finished_at: float | None


@dataclass(frozen=True)
class JobRow:
    run_id: str
    step: str
    name: str
    job_id: str | None
    state: str
    attempts: int
    exit_code: int | None
    reason: str | None
    log_stream: str | None
    spec: str
    intent_at: float | None
    submitted_at: float | None
    started_at: float | None
    stopped_at: float | None
    updated_at: float

    @property
    def job_spec(self) -> JobSpec:
        data = json.loads(self.spec)
        data["command"] = tuple(data["command"])
        data["depends_on"] = tuple(data["depends_on"])
        data["outputs"] = tuple(data["outputs"])
        return JobSpec(**data)

    @property
    def terminal(self) -> bool:
        return self.state in JOB_TERMINAL


def _spec_json(spec: JobSpec) -> str:
    return json.dumps(asdict(spec), sort_keys=True)


class Ledger:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves so each method is one transaction.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before we delete the SQS message it stands for (NORMAL could lose
            # the last commits on power loss).
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params))

    # -- runs ---------------------------------------------------------------------------------------
    def create_run(self, obj: InputObject, plan: Plan, *, now: float | None = None) -> bool:
        """Record a run and its planned jobs; False (and nothing written) when the identity exists."""
        now = time.time() if now is None else now
        with self._tx() as db:
            cur = db.execute(
                """INSERT OR IGNORE INTO runs (run_id, bucket, key, version, etag, version_id, size, sample,
                   input_uri, inbox_key, report_uri, row_uri, state, attempt, event_time, created_at,
                   updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)""",
                (
                    plan.run_id, obj.bucket, obj.key, obj.identity_version, obj.etag, obj.version_id,
                    obj.size, plan.sample, plan.input_uri, plan.inbox_key, plan.report_uri, plan.row_uri,
                    RUN_ACTIVE,
                    obj.event_time.timestamp() if obj.event_time else None, now, now,
                ),
            )  # fmt: skip
            if cur.rowcount == 0:
                return False
            for spec in plan.jobs:
                db.execute(
                    "INSERT INTO jobs (run_id, step, name, state, spec, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (plan.run_id, spec.step, spec.name, PLANNED, _spec_json(spec), now),
                )
            db.execute(
                "INSERT OR REPLACE INTO outputs (run_id, kind, uri, recorded_at) VALUES (?, 'report', ?, ?)",
                (plan.run_id, plan.report_uri, now),
            )
        return True

    def create_rejected(
        self,
        run_id: str,
        obj: InputObject,
        sample: str,
        input_uri: str,
        reason: str,
        *,
        now: float | None = None,
    ) -> bool:
        """Record an object that cannot be processed, so operators see it and it is not retried blindly."""
        now = time.time() if now is None else now
        with self._tx() as db:
            cur = db.execute(
                """INSERT OR IGNORE INTO runs (run_id, bucket, key, version, etag, version_id, size, sample,
                   input_uri, inbox_key, state, reason, event_time, created_at, updated_at, finished_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    run_id, obj.bucket, obj.key, obj.identity_version, obj.etag, obj.version_id, obj.size,
                    sample, input_uri, obj.key, RUN_REJECTED, reason,
                    obj.event_time.timestamp() if obj.event_time else None, now, now, now,
                ),
            )  # fmt: skip
            return cur.rowcount > 0

    def run_exists(self, bucket: str, key: str, version: str) -> bool:
        rows = self._query(
            "SELECT 1 FROM runs WHERE bucket = ? AND key = ? AND version = ?", (bucket, key, version)
        )
        return bool(rows)

    def get_run(self, run_id: str) -> RunRow | None:
        rows = self._query("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return RunRow(**dict(rows[0])) if rows else None

    def runs(
        self,
        *,
        states: Iterable[str] | None = None,
        sample: str | None = None,
        key_prefix: str | None = None,
        limit: int | None = None,
    ) -> list[RunRow]:
        sql = "SELECT * FROM runs WHERE 1=1"
        params: list[Any] = []
        if states:
            states = list(states)
            sql += f" AND state IN ({','.join('?' * len(states))})"
            params += states
        if sample:
            sql += " AND sample = ?"
            params.append(sample)
        if key_prefix:
            sql += " AND substr(key, 1, ?) = ?"
            params += [len(key_prefix), key_prefix]
        sql += " ORDER BY created_at DESC, run_id"
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        return [RunRow(**dict(r)) for r in self._query(sql, params)]

    def finish_run(
        self, run_id: str, state: str, reason: str | None = None, *, now: float | None = None
    ) -> bool:
        """Move an active run to a final state; False when it was not active (idempotent)."""
        now = time.time() if now is None else now
        with self._tx() as db:
            cur = db.execute(
                "UPDATE runs SET state = ?, reason = ?, updated_at = ?, finished_at = ? "
                "WHERE run_id = ? AND state = ?",
                (state, reason, now, now, run_id, RUN_ACTIVE),
            )
            return cur.rowcount > 0

    def retry_run(self, run_id: str, *, now: float | None = None) -> list[str]:
        """Re-activate a failed/cancelled run: steps that did not succeed go back to PLANNED under a new
        attempt name; succeeded upstream steps are reused. Returns the steps that will run again."""
        now = time.time() if now is None else now
        with self._tx() as db:
            row = db.execute("SELECT state, attempt, sample FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None or row["state"] not in (RUN_FAILED, RUN_CANCELLED):
                return []
            attempt = int(row["attempt"]) + 1
            steps = []
            for job in db.execute(
                "SELECT step, state, spec FROM jobs WHERE run_id = ?", (run_id,)
            ).fetchall():
                if job["state"] == SUCCEEDED:
                    continue
                name = job_name(row["sample"], run_id, job["step"], attempt)
                spec = json.loads(job["spec"])
                spec["name"] = name
                db.execute(
                    """UPDATE jobs SET name = ?, job_id = NULL, state = ?, exit_code = NULL, reason = NULL,
                       log_stream = NULL, spec = ?, intent_at = NULL, submitted_at = NULL, started_at = NULL,
                       stopped_at = NULL, updated_at = ? WHERE run_id = ? AND step = ?""",
                    (name, PLANNED, json.dumps(spec, sort_keys=True), now, run_id, job["step"]),
                )
                steps.append(job["step"])
            if steps:
                db.execute(
                    """UPDATE runs SET state = ?, attempt = ?, reason = NULL, finished_at = NULL,
                       updated_at = ? WHERE run_id = ?""",
                    (RUN_ACTIVE, attempt, now, run_id),
                )
            return steps

    # -- jobs ---------------------------------------------------------------------------------------
    def jobs_for_run(self, run_id: str) -> list[JobRow]:
        rows = self._query("SELECT * FROM jobs WHERE run_id = ?", (run_id,))
        return sorted((JobRow(**dict(r)) for r in rows), key=lambda j: _STEP_ORDER.get(j.step, 9))

    def job_pages(self, states: Iterable[str], page_size: int = 1000) -> Iterator[list[JobRow]]:
        """Jobs in `states`, `page_size` at a time, so a caller walking a backlog of tens of thousands
        of active jobs holds one page, not all of them (each row carries its spec, ~0.5-1.2 KB).

        Pages follow rowid, which an UPDATE never changes: a job whose state changes during the walk is
        neither seen twice nor skipped; a job inserted meanwhile may wait for the next walk."""
        states = list(states)
        marks = ",".join("?" * len(states))
        sql = (
            f"SELECT rowid AS row_number, * FROM jobs WHERE state IN ({marks}) "  # noqa: S608
            "AND rowid > ? ORDER BY rowid LIMIT ?"
        )
        after = 0
        while True:
            rows = self._query(sql, [*states, after, page_size])
            if not rows:
                return
            after = rows[-1]["row_number"]
            page = [dict(r) for r in rows]
            for row in page:
                del row["row_number"]
            yield [JobRow(**row) for row in page]
            if len(rows) < page_size:
                return

    def runs_with_unsubmitted_jobs(self, limit: int = 500) -> list[str]:
        rows = self._query(
            """SELECT DISTINCT j.run_id FROM jobs j JOIN runs r ON r.run_id = j.run_id
               WHERE r.state = ? AND j.state IN (?, ?) ORDER BY r.created_at LIMIT ?""",
            (RUN_ACTIVE, PLANNED, INTENT, limit),
        )
        return [r["run_id"] for r in rows]

    def mark_intent(self, run_id: str, step: str, *, now: float | None = None) -> None:
        """Phase one of a submission: committed before the executor is called."""
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state = ?, intent_at = ?, updated_at = ? "
                "WHERE run_id = ? AND step = ? AND state = ?",
                (INTENT, now, now, run_id, step, PLANNED),
            )

    def mark_submitted(self, run_id: str, step: str, job_id: str, *, now: float | None = None) -> None:
        """Phase two: the executor accepted the job and gave it an id."""
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute(
                """UPDATE jobs SET state = ?, job_id = ?, attempts = attempts + 1, submitted_at = ?,
                   updated_at = ? WHERE run_id = ? AND step = ? AND state IN (?, ?)""",
                (SUBMITTED, job_id, now, now, run_id, step, PLANNED, INTENT),
            )

    def requeue_job(self, run_id: str, step: str, *, now: float | None = None) -> None:
        """Forget a job id the executor no longer knows (local mode after a restart): submit it again."""
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute(
                """UPDATE jobs SET state = ?, job_id = NULL, intent_at = NULL, submitted_at = NULL,
                   updated_at = ? WHERE run_id = ? AND step = ?""",
                (PLANNED, now, run_id, step),
            )

    def update_job(
        self,
        run_id: str,
        step: str,
        *,
        state: str,
        exit_code: int | None = None,
        reason: str | None = None,
        log_stream: str | None = None,
        started_at: float | None = None,
        stopped_at: float | None = None,
        now: float | None = None,
    ) -> bool:
        """Record a state seen in the executor; False when nothing changed (or the job is already final)."""
        now = time.time() if now is None else now
        terminal = ",".join(f"'{s}'" for s in JOB_TERMINAL)
        with self._tx() as db:
            cur = db.execute(
                f"""UPDATE jobs SET state = ?, exit_code = COALESCE(?, exit_code),
                    reason = COALESCE(?, reason),
                    log_stream = COALESCE(?, log_stream), started_at = COALESCE(?, started_at),
                    stopped_at = COALESCE(?, stopped_at), updated_at = ?
                    WHERE run_id = ? AND step = ? AND state NOT IN ({terminal})
                    AND (state != ? OR COALESCE(?, log_stream, '') != COALESCE(log_stream, ''))""",  # noqa: S608
                (
                    state,
                    exit_code,
                    reason,
                    log_stream,
                    started_at,
                    stopped_at,
                    now,
                    run_id,
                    step,
                    state,
                    log_stream,
                ),
            )
            return cur.rowcount > 0

    def record_output(self, run_id: str, kind: str, uri: str, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO outputs (run_id, kind, uri, recorded_at) VALUES (?, ?, ?, ?)",
                (run_id, kind, uri, now),
            )

    def outputs(self, run_id: str) -> dict[str, str]:
        return {
            r["kind"]: r["uri"]
            for r in self._query("SELECT kind, uri FROM outputs WHERE run_id = ?", (run_id,))
        }

    # -- index objects ------------------------------------------------------------------------------
    def record_index(self, bucket: str, key: str, version: str, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO index_objects (bucket, key, version, recorded_at) "
                "VALUES (?, ?, ?, ?)",
                (bucket, key, version, now),
            )

    def has_index(self, bucket: str, keys: Iterable[str]) -> bool:
        keys = list(keys)
        rows = self._query(
            f"SELECT 1 FROM index_objects WHERE bucket = ? AND key IN ({','.join('?' * len(keys))})",  # noqa: S608
            [bucket, *keys],
        )
        return bool(rows)

    # -- results ------------------------------------------------------------------------------------
    def upsert_result(self, inbox_key: str, run_id: str, finished_at: float, row: dict[str, Any]) -> bool:
        """Latest run wins: a row replaces the stored one only when it finished later."""
        with self._tx() as db:
            cur = db.execute(
                """INSERT INTO results (inbox_key, run_id, finished_at, row) VALUES (?, ?, ?, ?)
                   ON CONFLICT (inbox_key) DO UPDATE SET run_id = excluded.run_id,
                   finished_at = excluded.finished_at, row = excluded.row
                   WHERE excluded.finished_at >= results.finished_at""",
                (inbox_key, run_id, finished_at, json.dumps(row, sort_keys=False)),
            )
            return cur.rowcount > 0

    def result_rows(self) -> list[dict[str, Any]]:
        return [json.loads(r["row"]) for r in self._query("SELECT row FROM results ORDER BY inbox_key")]

    # -- summaries ----------------------------------------------------------------------------------
    def run_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(RUN_STATES, 0)
        for r in self._query("SELECT state, COUNT(*) AS n FROM runs GROUP BY state"):
            counts[r["state"]] = int(r["n"])
        return counts

    def job_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(JOB_STATES, 0)
        for r in self._query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"):
            counts[r["state"]] = int(r["n"])
        return counts

    def recent_failures(self, limit: int = 10) -> list[tuple[RunRow, JobRow | None]]:
        out = []
        for run in self.runs(states=[RUN_FAILED, RUN_REJECTED], limit=limit):
            failed = [j for j in self.jobs_for_run(run.run_id) if j.state in (FAILED, LOST)]
            out.append((run, failed[0] if failed else None))
        return out


_STEP_ORDER = {"index": 0, "alignstats": 1, "summary": 2}
