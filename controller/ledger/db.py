"""The ledger's connection: one SQLite file in WAL mode, one transaction per public method, and the
transition check every state change goes through (controller.states is the table)."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from controller.ledger.schema import ADDED_COLUMNS, ADDED_INDEXES, SCHEMA, SCHEMA_VERSION
from core.logs import get_logger

# A write-probe's size: more than one intake transaction writes (a run, its jobs' specs, an output), so a
# probe that commits says the next run can be committed too.
PROBE_BYTES = 64 * 1024


class LedgerDb:
    # False after a transaction could not commit (disk full, I/O error, read-only, locked past the
    # timeout) until probe_write() succeeds: intake stops receiving meanwhile (controller.service).
    writable: bool = True
    write_error: str | None = None

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves so each method is one transaction.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self.log = get_logger(component="ledger")
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before we delete the SQS message it stands for (NORMAL could lose
            # the last commits on power loss).
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(SCHEMA)
            self._add_missing_columns()
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    def _add_missing_columns(self) -> None:
        """A ledger from an older controller (or restored from an older backup): add the new columns."""
        for table, column, declaration in ADDED_COLUMNS:
            have = {r["name"] for r in self._conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        self._conn.executescript(ADDED_INDEXES)
        self._conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version' AND CAST(value AS INTEGER) < ?",
            (str(SCHEMA_VERSION), SCHEMA_VERSION),
        )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._rollback()
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._rollback()  # a failed COMMIT may leave the transaction open
                self._unwritable(exc)
                raise
            self.writable, self.write_error = True, None

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back itself (SQLITE_FULL)
                self._conn.execute("ROLLBACK")

    def _unwritable(self, exc: sqlite3.Error) -> None:
        if self.writable:
            self.log.error(
                "ledger.unwritable",
                path=self.path,
                error=f"{type(exc).__name__}: {exc}",
                fix="free space on the ledger's filesystem or fix its permissions; intake resumes by itself",
            )
        self.writable, self.write_error = False, str(exc)

    def probe_write(self) -> bool:
        """Commit a PROBE_BYTES write (kept in `meta`, replaced each time): True when the ledger can
        commit again. Called by intake while the ledger is unwritable."""
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('write_probe', ?)",
                    (f"{time.time():.3f} " + "x" * PROBE_BYTES,),
                )
        except sqlite3.OperationalError:
            return False
        self.log.info("ledger.writable", path=self.path)
        return True

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params))

    def _refused(self, what: str, old: str, new: str, **ids: str) -> None:
        """A state change the transition table does not allow: ignored, and said so (a caller acting on
        a stale view, e.g. a job that finished between reading and updating it)."""
        self.log.warning("ledger.transition_refused", entity=what, state=old, requested=new, **ids)
