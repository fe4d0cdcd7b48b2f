"""The controller's durable truth: one SQLite file in WAL mode, recording what intake and the planner
hand it (runs, planned jobs, rejections) and every state change the transition table allows.

Tables (schema.py; created on first open, `schema_version` in `meta`):
- `runs`     one pipeline run per object identity (bucket, key, versionId-or-ETag), UNIQUE on it, so a
             duplicate delivery can never create a second run. State (controller.states.RunState):
             active → succeeded | failed | cancelled; `rejected` for objects that cannot be planned.
- `jobs`     one row per (run, step): deterministic name, Batch/local job id, state, attempts, exit code,
             status reason, log stream, timestamps, and the planned spec (JSON, typed command). Submission
             is two-phase: PLANNED → INTENT (committed before SubmitJob) → SUBMITTED with the job id
             (committed after). An INTENT row without a job id after a crash is resolved by looking the
             name up in the executor.
- `outputs`  objects a run produced (report, row, index).
- `index_objects`  index files that arrived in the inbox (they satisfy the index step of a later object).
- `results`  the latest summary row per inbox key; the combined results table is rendered from it.

Every public method is one transaction; the connection is shared between the scheduler's threads
behind a lock (SQLite serialises writers anyway, and our transactions are short).
"""

from __future__ import annotations

from controller.ledger.arrays import ArrayQueries
from controller.ledger.jobs import JobQueries
from controller.ledger.results import ResultQueries
from controller.ledger.rows import JobRow, RunRow
from controller.ledger.runs import RunQueries
from controller.ledger.schema import SCHEMA_VERSION
from controller.states import JOB_BAD, RunState

__all__ = ["SCHEMA_VERSION", "JobRow", "Ledger", "RunRow"]


class Ledger(RunQueries, JobQueries, ArrayQueries, ResultQueries):
    """All query groups over one connection (controller.ledger.db.LedgerDb)."""

    def recent_failures(self, limit: int = 10) -> list[tuple[RunRow, JobRow | None]]:
        out = []
        for run in self.runs(states=[RunState.FAILED, RunState.REJECTED], limit=limit):
            failed = [j for j in self.jobs_for_run(run.run_id) if j.state in JOB_BAD]
            out.append((run, failed[0] if failed else None))
        return out
