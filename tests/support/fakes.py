"""Shared fakes for controller unit tests: executors and event sources that implement the Executor and
EventSource protocols in full (every declared capability), scripted for one behaviour each; and the
helpers that drive a Controller with them."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from controller.config import ControllerConfig
from controller.events import ObjectEvent, s3_notification_body
from controller.executors.base import FoundJob, JobStatus, SubmitRequest
from controller.service import Controller
from controller.sources.base import Message


class HeldExecutor:
    """Executor whose SubmitJob does not return until released (a token bucket or Batch being slow)."""

    kind = "held"
    requeue_missing = False
    missing_grace_seconds = 120.0
    submits_while_stopping = False
    supports_arrays = False

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.submitted: list[str] = []
        self.requests: list[SubmitRequest] = []

    def submit(self, request: SubmitRequest) -> str:
        self.started.set()
        self.release.wait(timeout=60)
        self.submitted.append(request.name)
        self.requests.append(request)
        return f"job-{len(self.submitted)}"

    def describe(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        return {}

    def find_by_name(self, name: str) -> JobStatus | None:
        return None

    def cancel(self, job_ids: Iterable[str], reason: str) -> None:
        return None

    def active_count(self) -> int:
        return 0

    def discover(self, name_pattern: str) -> list[FoundJob]:
        return []

    def close(self, *, wait: bool) -> None:
        return None


class ImmediateExecutor(HeldExecutor):
    """SubmitJob returns at once."""

    def __init__(self) -> None:
        super().__init__()
        self.release.set()


class ArrayExecutor(ImmediateExecutor):
    """Batch that takes array jobs; finds what it was given by name (a restart's intent lookup)."""

    supports_arrays = True

    def __init__(self) -> None:
        super().__init__()
        self.by_name: dict[str, str] = {}

    def submit(self, request: SubmitRequest) -> str:
        job_id = super().submit(request)
        self.by_name[request.name] = job_id
        return job_id

    def find_by_name(self, name: str) -> JobStatus | None:
        job_id = self.by_name.get(name)
        return JobStatus(job_id, name, "SUBMITTED") if job_id else None


class DescribingExecutor(HeldExecutor):
    """Batch as reconcile sees it: every described job is RUNNING; records each DescribeJobs batch."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def describe(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        self.batches.append(list(job_ids))
        return {j: JobStatus(j, "n", "RUNNING") for j in job_ids}


class ScriptedExecutor(HeldExecutor):
    """Batch with a state (default PENDING) and status reason per job id; records each DescribeJobs
    batch and every cancel."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.states: dict[str, str] = {}
        self.reasons: dict[str, str] = {}
        # job id -> (startedAt, stoppedAt, compute environment, capacity) once it ran
        self.ran: dict[str, tuple[float, float, str, str]] = {}
        self.cancelled: list[str] = []

    def describe(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        self.batches.append(sorted(job_ids))
        out = {}
        for j in job_ids:
            start, stop, ce, capacity = self.ran.get(j, (None, None, None, None))
            out[j] = JobStatus(
                j, "n", self.states.get(j, "PENDING"), reason=self.reasons.get(j), started_at=start,
                stopped_at=stop, compute_environment=ce, capacity=capacity,
            )  # fmt: skip
        return out

    def cancel(self, job_ids: Iterable[str], reason: str) -> None:
        self.cancelled += list(job_ids)


class ForgetfulExecutor(ScriptedExecutor):
    """A local executor after a controller restart: it knows none of the old job ids."""

    requeue_missing = True
    missing_grace_seconds = 0.0

    def describe(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        self.batches.append(sorted(job_ids))
        return {j: JobStatus(j, "n", self.states[j]) for j in job_ids if j in self.states}


class ListSource:
    """An event source over a fixed list of message bodies; records acks and releases."""

    kind = "list"
    unsettled = 0

    def __init__(self, bodies: list[str]) -> None:
        self.pending = [Message(message_id=str(i), body=b, receipt=i) for i, b in enumerate(bodies)]
        self.acked: list[Message] = []
        self.released: list[Message] = []

    def receive(self, max_messages: int = 10) -> list[Message]:
        batch, self.pending = self.pending[:max_messages], self.pending[max_messages:]
        return batch

    def ack(self, messages: Sequence[Message]) -> None:
        self.acked += messages

    def release(self, messages: Sequence[Message]) -> None:
        self.released += messages

    def extend(self, messages: Sequence[Message], seconds: int) -> None:
        return None

    def depth(self) -> dict[tuple[str, str], int]:
        return {}


# -- helpers for tests that drive a Controller ------------------------------------------------------------
def inbox_event(ctl: Controller, key: str, etag: str = "1-10") -> ObjectEvent:
    """An ObjectCreated event for `key` in `ctl`'s inbox."""
    return ObjectEvent(ctl.cfg.inbox_root, key, 10, etag, None, "ObjectCreated:Put", datetime.now(UTC))


def event_count(ctl: Controller, outcome: str) -> float:
    return ctl.metrics.registry.get_sample_value("alignbatch_events_total", {"outcome": outcome}) or 0.0


def burst(cfg: ControllerConfig, n: int) -> list[str]:
    """SQS bodies for `n` distinct BAMs put into the inbox, one event each."""
    return [
        s3_notification_body(
            [ObjectEvent(cfg.inbox_root, f"s{i}.bam", 10, f"{i}-1", None, "ObjectCreated:Put", None)]
        )
        for i in range(n)
    ]


def local_controller(tmp_path: Path, executor: HeldExecutor, source: ListSource | None = None) -> Controller:
    """A Controller on a local profile under `tmp_path` with a fake executor (and source)."""
    from controller.config import local_config
    from controller.ledger import Ledger
    from controller.metrics import Metrics

    return Controller(
        local_config(tmp_path), ledger=Ledger(tmp_path / "state.db"), executor=executor, source=source,
        metrics=Metrics(),
    )  # fmt: skip


def submit_run(ctl: Controller, key: str, prefix: str, steps=("index", "alignstats", "summary")) -> str:
    """Plan a run for `key` and mark its `steps` submitted, in that order, as job ids `<prefix>-<step>`."""
    if not [r for r in ctl.ledger.runs() if r.key == key]:
        ctl.handle_event(inbox_event(ctl, key))
    [run] = [r for r in ctl.ledger.runs() if r.key == key]
    for step in steps:
        ctl.ledger.mark_submitted(run.run_id, step, f"{prefix}-{step}")
    return run.run_id
