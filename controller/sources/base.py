"""The event-source interface: receive message bodies, acknowledge them after the ledger commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Message:
    message_id: str
    body: str
    receipt: Any  # opaque to callers: an SQS receipt handle, or the local file identity
    receive_count: int = 1
    sent_at: float | None = None  # epoch seconds


class EventSource(Protocol):
    kind: str

    def receive(self, max_messages: int = 10) -> list[Message]:
        """Up to `max_messages` messages; may block up to the source's wait time when there are none."""
        ...

    def ack(self, messages: Sequence[Message]) -> None:
        """The messages' events are committed to the ledger: remove them from the source."""
        ...

    def extend(self, messages: Sequence[Message], seconds: int) -> None:
        """Keep in-flight messages invisible to other consumers for `seconds` more."""
        ...

    def depth(self) -> dict[tuple[str, str], int]:
        """Gauge values keyed by (queue, kind): queue inbox|dlq, kind visible|in_flight."""
        ...
