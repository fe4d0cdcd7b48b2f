"""Jobs: one row per (run, step). Submission is two-phase: PLANNED → INTENT (committed before the
executor is called) → SUBMITTED with the job id (committed after); every later state is what the
executor reports. Each change is checked against controller.states' transition table."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator

from controller.ledger.db import LedgerDb
from controller.ledger.rows import JobRow
from controller.model import STEPS, job_name
from controller.states import (
    BATCH_ACTIVE,
    UNSUBMITTED,
    JobState,
    RunState,
    job_event_allowed,
    job_move_allowed,
)

_STEP_ORDER = {str(step): i for i, step in enumerate(STEPS)}


class JobQueries(LedgerDb):
    def job_by_id(self, job_id: str) -> JobRow | None:
        rows = self._query("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        return JobRow(**dict(rows[0])) if rows else None

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
        """Runs with a job to submit one at a time (a child of an array intent is the array stage's)."""
        rows = self._query(
            """SELECT DISTINCT j.run_id FROM jobs j JOIN runs r ON r.run_id = j.run_id
               WHERE r.state = ? AND j.state IN (?, ?) AND j.array_name IS NULL
               ORDER BY r.created_at LIMIT ?""",
            (RunState.ACTIVE, *UNSUBMITTED, limit),
        )
        return [r["run_id"] for r in rows]

    def _job_state(self, db: sqlite3.Connection, run_id: str, step: str) -> sqlite3.Row | None:
        return db.execute(
            "SELECT state, log_stream, job_id FROM jobs WHERE run_id = ? AND step = ?", (run_id, step)
        ).fetchone()

    def _may_move(
        self, row: sqlite3.Row | None, new: JobState, run_id: str, step: str, *, only_from: Iterable[str]
    ) -> bool:
        """`only_from`: the states this operation applies to (a repeat of it is a quiet no-op); a move
        the transition table forbids is refused and logged."""
        if row is None or row["state"] not in set(only_from):
            return False
        if not job_move_allowed(row["state"], new):
            self._refused("job", row["state"], new, run_id=run_id, step=step)
            return False
        return True

    def mark_intent(self, run_id: str, step: str, *, now: float | None = None) -> None:
        """Phase one of a submission: committed before the executor is called."""
        now = time.time() if now is None else now
        with self._tx() as db:
            row = self._job_state(db, run_id, step)
            if self._may_move(row, JobState.INTENT, run_id, step, only_from=(JobState.PLANNED,)):
                db.execute(
                    "UPDATE jobs SET state = ?, intent_at = ?, updated_at = ? WHERE run_id = ? AND step = ?",
                    (JobState.INTENT, now, now, run_id, step),
                )

    def mark_submitted(
        self, run_id: str, step: str, job_id: str, *, queue: str | None = None, now: float | None = None
    ) -> None:
        """Phase two: the executor accepted the job and gave it an id (a repeat never overwrites it).
        `queue`: where it was sent (controller.placement), recorded for the row."""
        now = time.time() if now is None else now
        with self._tx() as db:
            row = self._job_state(db, run_id, step)
            # Only from PLANNED/INTENT: a repeat (already SUBMITTED) must not overwrite the first id.
            if self._may_move(row, JobState.SUBMITTED, run_id, step, only_from=UNSUBMITTED):
                db.execute(
                    """UPDATE jobs SET state = ?, job_id = ?, attempts = attempts + 1, submitted_at = ?,
                       queue = COALESCE(?, queue), updated_at = ? WHERE run_id = ? AND step = ?""",
                    (JobState.SUBMITTED, job_id, now, queue, now, run_id, step),
                )

    def replan_reclaimed(
        self,
        run_id: str,
        step: str,
        *,
        job_id: str,
        reason: str,
        started_at: float | None = None,
        stopped_at: float | None = None,
        compute_environment: str | None = None,
        capacity: str | None = None,
        now: float | None = None,
    ) -> list[str] | None:
        """A step whose host went away (controller.placement): its attempt goes into its history, the
        reclaim is counted, and it is PLANNED again under a new name. Every downstream step that has not
        succeeded is planned again too, since its Batch job waits on the old id. Returns the ids of those
        downstream jobs still active in the executor (the caller cancels them); None when `job_id` is no
        longer this step's job (a stale status) or the step is not active."""
        now = time.time() if now is None else now
        with self._tx() as db:
            rows = {
                r["step"]: r for r in db.execute("SELECT * FROM jobs WHERE run_id = ?", (run_id,)).fetchall()
            }
            run = db.execute("SELECT sample, attempt FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            row = rows.get(step)
            if run is None or row is None or row["job_id"] != job_id or row["state"] not in BATCH_ACTIVE:
                return None
            replan = {step}
            changed = True
            while changed:  # downstream steps, transitively (the DAG is three steps at most)
                changed = False
                for other, r in rows.items():
                    deps = json.loads(r["spec"]).get("depends_on") or []
                    if other not in replan and r["state"] != JobState.SUCCEEDED and set(deps) & replan:
                        replan.add(other)
                        changed = True
            still_active: list[str] = []
            for other in sorted(replan, key=lambda s: _STEP_ORDER.get(s, 9)):
                r = rows[other]
                mine = other == step
                entry = {
                    "job_id": r["job_id"],
                    "queue": r["queue"],
                    "compute_environment": compute_environment if mine else r["compute_environment"],
                    "capacity": capacity if mine else r["capacity"],
                    "started_at": started_at if mine else r["started_at"],
                    "stopped_at": (stopped_at or now) if mine else r["stopped_at"],
                    "reason": reason if mine else f"upstream {step} reclaimed",
                }
                history = [*(json.loads(r["history"]) if r["history"] else []), entry]
                if not mine and r["job_id"] and r["state"] in BATCH_ACTIVE:
                    still_active.append(r["job_id"])
                if not job_move_allowed(r["state"], JobState.PLANNED):
                    self._refused("job", r["state"], "PLANNED (reclaimed)", run_id=run_id, step=other)
                    continue
                name = job_name(run["sample"], run_id, other, int(run["attempt"]), len(history))
                spec = json.loads(r["spec"])
                spec["name"] = name
                db.execute(
                    """UPDATE jobs SET name = ?, job_id = NULL, state = ?, exit_code = NULL, reason = ?,
                       log_stream = NULL, spec = ?, intent_at = NULL, submitted_at = NULL,
                       started_at = NULL, stopped_at = NULL, compute_environment = NULL, capacity = NULL,
                       array_name = NULL, array_index = NULL,
                       reclaims = reclaims + ?, history = ?, updated_at = ? WHERE run_id = ? AND step = ?""",
                    (
                        name, JobState.PLANNED, entry["reason"], json.dumps(spec, sort_keys=True),
                        1 if mine else 0, json.dumps(history), now, run_id, other,
                    ),
                )  # fmt: skip
            return still_active

    def adopt_job(self, run_id: str, step: str, name: str, job_id: str, *, now: float | None = None) -> bool:
        """A job found in the executor for a run the ledger planned but had not recorded submitting (a
        ledger rebuilt or restored from an older backup): take its id and name, never submit it again."""
        now = time.time() if now is None else now
        with self._tx() as db:
            row = self._job_state(db, run_id, step)
            if not self._may_move(row, JobState.SUBMITTED, run_id, step, only_from=UNSUBMITTED):
                return False
            db.execute(
                """UPDATE jobs SET state = ?, job_id = ?, name = ?, attempts = attempts + 1,
                   submitted_at = ?, updated_at = ? WHERE run_id = ? AND step = ?""",
                (JobState.SUBMITTED, job_id, name, now, now, run_id, step),
            )
            return True

    def requeue_job(self, run_id: str, step: str, *, now: float | None = None) -> bool:
        """Forget a job id the executor no longer knows (local mode after a restart): submit it again.
        Only an active job can be requeued; False (logged) for any other."""
        now = time.time() if now is None else now
        with self._tx() as db:
            row = self._job_state(db, run_id, step)
            if row is not None and row["state"] not in BATCH_ACTIVE:
                self._refused("job", row["state"], "PLANNED (requeue)", run_id=run_id, step=step)
                return False
            if not self._may_move(row, JobState.PLANNED, run_id, step, only_from=BATCH_ACTIVE):
                return False
            db.execute(
                """UPDATE jobs SET state = ?, job_id = NULL, intent_at = NULL, submitted_at = NULL,
                   updated_at = ? WHERE run_id = ? AND step = ?""",
                (JobState.PLANNED, now, run_id, step),
            )
            return True

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
        forward_only: bool = False,
        job_id: str | None = None,
        compute_environment: str | None = None,
        capacity: str | None = None,
    ) -> bool:
        """Record a state seen in the executor; False when nothing changed or the move is not allowed
        (a final state is final). `forward_only` (state-change events, which may be duplicated or out of
        order): a step back is quietly ignored. `job_id`: the status is of that job; ignored when the
        step has another job by now (it was planned again after a reclaim)."""
        now = time.time() if now is None else now
        try:
            new = JobState(state)
        except ValueError:
            self._refused("job", "?", state, run_id=run_id, step=step)
            return False
        with self._tx() as db:
            row = self._job_state(db, run_id, step)
            if row is None or (job_id is not None and row["job_id"] != job_id):
                return False
            same_state = row["state"] == new
            if same_state and (log_stream is None or log_stream == row["log_stream"]):
                return False  # nothing new: the common case of a reconcile pass
            refresh = same_state and new in BATCH_ACTIVE  # the same state with a log stream now known
            if forward_only and not refresh and not job_event_allowed(row["state"], new):
                return False  # a late or repeated event: the job is already further along
            if not self._may_move(row, new, run_id, step, only_from=JobState):
                return False
            db.execute(
                """UPDATE jobs SET state = ?, exit_code = COALESCE(?, exit_code),
                   reason = COALESCE(?, reason),
                   log_stream = COALESCE(?, log_stream), started_at = COALESCE(?, started_at),
                   stopped_at = COALESCE(?, stopped_at),
                   compute_environment = COALESCE(?, compute_environment),
                   capacity = COALESCE(?, capacity), updated_at = ?
                   WHERE run_id = ? AND step = ?""",
                (
                    new, exit_code, reason, log_stream, started_at, stopped_at, compute_environment,
                    capacity, now, run_id, step,
                ),
            )  # fmt: skip
            return True
