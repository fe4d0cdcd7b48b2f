"""Runs: one per object identity (UNIQUE on bucket, key, version), created with their planned jobs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from controller.ledger.db import LedgerDb
from controller.ledger.rows import RunRow
from controller.model import InputObject, Plan, Rejection, job_name
from controller.states import JOB_BAD, JOB_TERMINAL, JobState, RunState, job_move_allowed, run_move_allowed

# What retry_run reports when no step has to run again, only the run's finishing (every job succeeded but
# the run failed while reading its summary row): the next reconcile pass finishes it.
FINISH_AGAIN = "finish"


class RunQueries(LedgerDb):
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
                    RunState.ACTIVE,
                    obj.event_time.timestamp() if obj.event_time else None, now, now,
                ),
            )  # fmt: skip
            if cur.rowcount == 0:
                return False
            for spec in plan.jobs:
                db.execute(
                    "INSERT INTO jobs (run_id, step, name, state, spec, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (plan.run_id, spec.step, spec.name, JobState.PLANNED, spec.to_json(), now),
                )
            db.execute(
                "INSERT OR REPLACE INTO outputs (run_id, kind, uri, recorded_at) VALUES (?, 'report', ?, ?)",
                (plan.run_id, plan.report_uri, now),
            )
        return True

    def create_rejected(self, obj: InputObject, rejection: Rejection, *, now: float | None = None) -> bool:
        """Record an object that cannot be processed, so operators see it and it is not retried blindly."""
        now = time.time() if now is None else now
        r = rejection
        with self._tx() as db:
            cur = db.execute(
                """INSERT OR IGNORE INTO runs (run_id, bucket, key, version, etag, version_id, size, sample,
                   input_uri, inbox_key, state, reason, event_time, created_at, updated_at, finished_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    r.run_id, obj.bucket, obj.key, obj.identity_version, obj.etag, obj.version_id, obj.size,
                    r.sample, r.input_uri, r.inbox_key, RunState.REJECTED, r.reason,
                    obj.event_time.timestamp() if obj.event_time else None, now, now, now,
                ),
            )  # fmt: skip
            return cur.rowcount > 0

    def adopt_finished(
        self, obj: InputObject, *, run_id: str, sample: str, input_uri: str, inbox_key: str,
        report_uri: str, row_uri: str, now: float | None = None,
    ) -> bool:  # fmt: skip
        """Record a run found finished in rows/ (a ledger rebuilt after the host was lost): succeeded,
        no jobs, so a redelivered event for the object is a duplicate. False when the run exists."""
        now = time.time() if now is None else now
        with self._tx() as db:
            cur = db.execute(
                """INSERT OR IGNORE INTO runs (run_id, bucket, key, version, etag, version_id, size, sample,
                   input_uri, inbox_key, report_uri, row_uri, state, attempt, reason, event_time,
                   created_at, updated_at, finished_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)""",
                (
                    run_id, obj.bucket, obj.key, obj.identity_version, obj.etag, obj.version_id, obj.size,
                    sample, input_uri, inbox_key, report_uri, row_uri, RunState.SUCCEEDED,
                    "rebuilt from its summary row", obj.event_time.timestamp() if obj.event_time else None,
                    now, now, now,
                ),
            )  # fmt: skip
            if cur.rowcount:
                for kind, uri in (("report", report_uri), ("row", row_uri)):
                    db.execute(
                        "INSERT OR REPLACE INTO outputs (run_id, kind, uri, recorded_at) VALUES (?, ?, ?, ?)",
                        (run_id, kind, uri, now),
                    )
            return cur.rowcount > 0

    def run_exists(self, bucket: str, key: str, version: str) -> bool:
        rows = self._query(
            "SELECT 1 FROM runs WHERE bucket = ? AND key = ? AND version = ?", (bucket, key, version)
        )
        return bool(rows)

    def content_has_run(self, bucket: str, key: str, etag: str) -> bool:
        """A run exists for this content of the key, under whichever identity (a versionId from an
        event, or the ETag a listing sees): a rebuilt ledger's inbox listing must not run it again."""
        rows = self._query(
            "SELECT 1 FROM runs WHERE bucket = ? AND key = ? AND (etag = ? OR version = ?)",
            (bucket, key, etag, etag),
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
            row = db.execute("SELECT state FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return False
            if row["state"] == state:
                return False  # already there: a repeat, not news
            if row["state"] != RunState.ACTIVE or not run_move_allowed(row["state"], state):
                self._refused("run", row["state"], state, run_id=run_id)
                return False
            db.execute(
                "UPDATE runs SET state = ?, reason = ?, updated_at = ?, finished_at = ? WHERE run_id = ?",
                (state, reason, now, now, run_id),
            )
            return True

    def finishable_runs(self, limit: int = 1000) -> list[str]:
        """Active runs with a verdict to reach: every job ended, or one failed. Reconcile sweeps them each
        pass, so a run whose finishing was interrupted (a crash or a failed commit after its last job's
        SUCCEEDED, a transient S3 error reading its row) is finished later, never left active."""
        terminal = ",".join("?" * len(JOB_TERMINAL))
        bad = ",".join("?" * len(JOB_BAD))
        rows = self._query(
            f"""SELECT r.run_id FROM runs r WHERE r.state = ?
                AND EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.run_id)
                AND (NOT EXISTS (SELECT 1 FROM jobs j
                                 WHERE j.run_id = r.run_id AND j.state NOT IN ({terminal}))
                     OR EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.run_id AND j.state IN ({bad})))
                ORDER BY r.created_at LIMIT ?""",  # noqa: S608  # nosec B608 # only ? placeholders are formatted in; values are bound
            (RunState.ACTIVE, *JOB_TERMINAL, *JOB_BAD, limit),
        )
        return [r["run_id"] for r in rows]

    def retry_run(self, run_id: str, *, now: float | None = None) -> list[str]:
        """Re-activate a failed/cancelled run: steps that did not succeed go back to PLANNED under a new
        attempt name; succeeded upstream steps are reused. Returns the steps that will run again, or
        [FINISH_AGAIN] when every job had succeeded (only the finishing failed): the run is active again
        and the next reconcile pass finishes it."""
        now = time.time() if now is None else now
        with self._tx() as db:
            row = db.execute("SELECT state, attempt, sample FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None or not run_move_allowed(row["state"], RunState.ACTIVE):
                return []
            attempt = int(row["attempt"]) + 1
            steps = []
            for job in db.execute("SELECT * FROM jobs WHERE run_id = ?", (run_id,)).fetchall():
                if not job_move_allowed(job["state"], JobState.PLANNED):
                    continue  # SUCCEEDED: reused by the new attempt
                name = job_name(row["sample"], run_id, job["step"], attempt)
                spec = json.loads(job["spec"])
                spec["name"] = name
                history = json.loads(job["history"]) if job["history"] else []
                if job["job_id"]:  # the failed attempt ran (or waited) somewhere: keep it for its cost
                    history.append({
                        k: job[k] for k in ("job_id", "queue", "compute_environment", "capacity",
                                            "started_at", "stopped_at", "reason")
                    })  # fmt: skip
                db.execute(
                    """UPDATE jobs SET name = ?, job_id = NULL, state = ?, exit_code = NULL, reason = NULL,
                       log_stream = NULL, spec = ?, intent_at = NULL, submitted_at = NULL, started_at = NULL,
                       stopped_at = NULL, compute_environment = NULL, capacity = NULL, history = ?,
                       array_name = NULL, array_index = NULL,
                       updated_at = ? WHERE run_id = ? AND step = ?""",
                    (
                        name, JobState.PLANNED, json.dumps(spec, sort_keys=True),
                        json.dumps(history) if history else None, now, run_id, job["step"],
                    ),
                )  # fmt: skip
                steps.append(job["step"])
            if not steps and row["state"] == RunState.FAILED:
                steps.append(FINISH_AGAIN)
            if steps:
                db.execute(
                    """UPDATE runs SET state = ?, attempt = ?, reason = NULL, finished_at = NULL,
                       updated_at = ? WHERE run_id = ?""",
                    (RunState.ACTIVE, attempt, now, run_id),
                )
            return steps
