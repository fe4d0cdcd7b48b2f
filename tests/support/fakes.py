"""Shared fakes for controller unit tests: executors and event sources that implement the Executor and
EventSource protocols in full (every declared capability), scripted for one behaviour each."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from controller.executors.base import JobStatus, SubmitRequest
from controller.sources.base import Message


class HeldExecutor:
    """Executor whose SubmitJob does not return until released (a token bucket or Batch being slow)."""

    kind = "held"
    requeue_missing = False
    missing_grace_seconds = 120.0
    submits_while_stopping = False

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

    def close(self, *, wait: bool) -> None:
        return None


class ImmediateExecutor(HeldExecutor):
    """SubmitJob returns at once."""

    def __init__(self) -> None:
        super().__init__()
        self.release.set()


class DescribingExecutor(HeldExecutor):
    """Batch as reconcile sees it: every described job is RUNNING; records each DescribeJobs batch."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def describe(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        self.batches.append(list(job_ids))
        return {j: JobStatus(j, "n", "RUNNING") for j in job_ids}


class ScriptedExecutor(HeldExecutor):
    """Batch with a state per job id (default PENDING); records each DescribeJobs batch."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.states: dict[str, str] = {}

    def describe(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        self.batches.append(sorted(job_ids))
        return {j: JobStatus(j, "n", self.states.get(j, "PENDING")) for j in job_ids}


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
