"""Array submissions (controller/array_submit.py): which runs still wait with nothing submitted, and the
two phases of an array job, by its name, over the job rows of its children.

Phase one marks every child's row INTENT with the array's name and the child's index in one transaction;
phase two records the array's id, each row then holding its child's id `<array id>:<index>` (what Batch
describes, cancels and depends on). A crash in between leaves INTENT rows with an array name, which the
next pass resolves by looking the name up before anything is submitted again.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence

from controller.ledger.db import LedgerDb
from controller.ledger.rows import JobRow
from controller.states import JobState, RunState

_CHUNK = 500  # host parameters per IN (...) list, well under SQLite's limit
# JobRow's fields, selected by name so that a row is built from a plain tuple (no sqlite3.Row, no dict):
# a backfill reads 30,000 rows per 10,000-run round.
_JOB_COLUMNS = ", ".join(f.name for f in dataclasses.fields(JobRow))


class ArrayQueries(LedgerDb):
    def fresh_runs(self, limit: int, after: str | None = None) -> list[str]:
        """Active runs, oldest first, none of whose jobs has been submitted or put in an array yet.
        `after`: a run id returned by the previous call of the same pass; only runs after it (in that
        order) are looked at, so a pass over a 100,000-run backfill reads each run once instead of
        re-scanning the runs it already put into arrays (quadratic in the backlog)."""
        cursor = ""
        params: tuple[object, ...] = (RunState.ACTIVE, JobState.PLANNED)
        if after is not None:
            cursor = """AND (r.created_at, r.run_id) >
                        (SELECT a.created_at, a.run_id FROM runs a WHERE a.run_id = ?)"""
            params = (*params, after)
        rows = self._query(
            f"""SELECT r.run_id FROM runs r WHERE r.state = ?
               AND EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.run_id)
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.run_id
                               AND (j.state != ? OR j.array_name IS NOT NULL))
               {cursor}
               ORDER BY r.created_at, r.run_id LIMIT ?""",  # noqa: S608  # nosec B608 # only a fixed clause is formatted in; values are bound
            (*params, limit),
        )
        return [r["run_id"] for r in rows]

    def jobs_for_runs(self, run_ids: Sequence[str]) -> dict[str, list[JobRow]]:
        """Every job of these runs, by run, in the order the run ids are given."""
        out: dict[str, list[JobRow]] = {r: [] for r in run_ids}
        with self._lock:
            cur = self._conn.cursor()
            cur.row_factory = None  # tuples, in _JOB_COLUMNS order
            for i in range(0, len(run_ids), _CHUNK):
                chunk = list(run_ids[i : i + _CHUNK])
                marks = ",".join("?" * len(chunk))
                # ORDER BY: each run's rows by step, as the primary key gave them before jobs_run_state
                sql = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE run_id IN ({marks}) ORDER BY run_id, step"  # noqa: S608  # nosec B608 # only column names and ? placeholders are formatted in; values are bound
                for row in cur.execute(sql, chunk):
                    out[row[0]].append(JobRow(*row))
        return out

    def mark_array_intent(
        self, name: str, step: str, run_ids: Sequence[str], *, now: float | None = None
    ) -> int:
        """Phase one: `step` of each run (still PLANNED) becomes child i of array `name`. Returns how
        many rows were marked (a run whose step moved meanwhile is left out and keeps its index)."""
        now = time.time() if now is None else now
        with self._tx() as db:
            cur = db.executemany(
                """UPDATE jobs SET state = ?, intent_at = ?, array_name = ?, array_index = ?,
                   updated_at = ? WHERE run_id = ? AND step = ? AND state = ? AND array_name IS NULL""",
                [
                    (JobState.INTENT, now, name, index, now, run_id, step, JobState.PLANNED)
                    for index, run_id in enumerate(run_ids)
                ],
            )
            marked = cur.rowcount
        return marked

    def array_members(self, name: str) -> list[JobRow]:
        """The rows of array `name`, by child index."""
        rows = self._query("SELECT * FROM jobs WHERE array_name = ? ORDER BY array_index", (name,))
        return [JobRow(**dict(r)) for r in rows]

    def array_intents(self) -> list[str]:
        """Names of arrays whose submission was intended and not recorded (a crash, or a failed call)."""
        rows = self._query(
            """SELECT array_name FROM jobs WHERE state = ? AND array_name IS NOT NULL
               GROUP BY array_name ORDER BY MIN(intent_at)""",
            (JobState.INTENT,),
        )
        return [r["array_name"] for r in rows]

    def mark_array_submitted(
        self, name: str, array_id: str, *, queue: str | None = None, now: float | None = None
    ) -> int:
        """Phase two: every INTENT child of `name` gets its id `<array_id>:<index>`. Returns how many."""
        now = time.time() if now is None else now
        with self._tx() as db:
            cur = db.execute(
                """UPDATE jobs SET state = ?, job_id = ? || ':' || array_index, attempts = attempts + 1,
                   submitted_at = ?, queue = COALESCE(?, queue), updated_at = ?
                   WHERE array_name = ? AND state = ?""",
                (JobState.SUBMITTED, array_id, now, queue, now, name, JobState.INTENT),
            )
            return cur.rowcount

    def release_array_intent(self, names: Iterable[str], *, now: float | None = None) -> None:
        """Executor refused the array outright: its children go back to PLANNED as single jobs."""
        now = time.time() if now is None else now
        with self._tx() as db:
            for name in names:
                db.execute(
                    """UPDATE jobs SET state = ?, intent_at = NULL, array_name = NULL, array_index = NULL,
                       updated_at = ? WHERE array_name = ? AND state = ?""",
                    (JobState.PLANNED, now, name, JobState.INTENT),
                )
