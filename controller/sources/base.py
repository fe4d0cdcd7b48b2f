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
    """What the controller relies on, every capability declared (no probing for optional attributes)."""

    kind: str

    @property
    def unsettled(self) -> int:
        """Objects seen but not yet handed out (still being written); `run --once` waits for them."""
        ...

    def receive(self, max_messages: int = 10) -> list[Message]:
        """Up to `max_messages` messages; may block up to the source's wait time when there are none."""
        ...

    def ack(self, messages: Sequence[Message]) -> None:
        """The messages' events are committed to the ledger: remove them from the source."""
        ...

    def release(self, messages: Sequence[Message]) -> None:
        """The messages were not acknowledged (processing failed): let them be received again."""
        ...

    def extend(self, messages: Sequence[Message], seconds: int) -> None:
        """Keep in-flight messages invisible to other consumers for `seconds` more."""
        ...

    def depth(self) -> dict[tuple[str, str], int]:
        """Gauge values keyed by (queue, kind): queue inbox|dlq, kind visible|in_flight."""
        ...
