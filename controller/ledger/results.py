"""Outputs a run produced, index objects seen in the inbox, the latest summary row per inbox key, and
the counts the gauges and `status` show."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from controller.ledger.db import LedgerDb
from controller.states import JobState, RunState


class ResultQueries(LedgerDb):
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
        counts: dict[str, int] = {str(s): 0 for s in RunState}
        for r in self._query("SELECT state, COUNT(*) AS n FROM runs GROUP BY state"):
            counts[r["state"]] = int(r["n"])
        return counts

    def job_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {str(s): 0 for s in JobState}
        for r in self._query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"):
            counts[r["state"]] = int(r["n"])
        return counts
