"""The ledger's rows as frozen records (one per `runs` and `jobs` row, columns in table order)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from controller.model import JobSpec
from controller.states import JOB_TERMINAL


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
    queue: str | None = None
    compute_environment: str | None = None
    capacity: str | None = None
    reclaims: int = 0
    history: str | None = None  # JSON list of earlier attempts (controller.ledger.schema)
    array_name: str | None = None  # submitted as a child of this array job (controller.array_submit)
    array_index: int | None = None

    @property
    def earlier_attempts(self) -> list[dict[str, Any]]:
        return list(json.loads(self.history)) if self.history else []

    @cached_property
    def job_spec(self) -> JobSpec:
        # Parsed once per row: an array pass reads tens of thousands of rows and looks at each spec a
        # few times (cached_property writes the instance dict directly, so a frozen row allows it).
        return JobSpec.from_json(self.spec)

    @property
    def terminal(self) -> bool:
        return self.state in JOB_TERMINAL
