"""moto's server with a performance shim for its SQS queue, for benchmarks with thousands of queued messages.

    python benchmarks/moto_fast_sqs.py -H 127.0.0.1 -p PORT      (same arguments as `moto_server`)

Why: moto 5.2.5 keeps a queue's messages in one list and recomputes everything from it. Each
`Queue.attributes` access (made for every SendMessage, including each S3 notification, and three times
for every message ReceiveMessage returns, to read MessageRetentionPeriod) counts visible, in-flight and
delayed messages by scanning the list with two datetime-based clock reads per message; DeleteMessage
scans the list twice per receipt handle, building a list per message. So the cost of each call grows
with the queue length, and draining N queued messages costs O(N²): with ~2,300 messages queued moto
accepted about 5 messages/s. Real SQS serves a deep queue at constant cost per call. Measured with
py-spy on a 3,000-object run, 62 % of moto's CPU during the uploads and 72 % during the drain went to
`Queue.attributes` alone.

What the shim changes — data structures and clock reads only; every API answer is the same:
  1. `Queue.attributes` returns a read-only mapping that computes an attribute when it is read, so
     reading `ContentBasedDeduplication` or `MessageRetentionPeriod` no longer counts the messages (the
     counts are still computed, the same way, when GetQueueAttributes asks for them).
  2. `Queue.messages` and the visible/in-flight/delayed counts read the clock once per call instead of
     twice per message (moto's millisecond clock, same comparisons).
  3. DeleteMessage finds the message through an index of the receipt handles handed out by
     ReceiveMessage instead of two scans (unknown handles still take moto's own path, so invalid or
     stale handles get moto's exact answers); `Message.had_receipt_handle` no longer builds a list.
  4. werkzeug's per-request access log is off (the benchmark discards it anyway).
Nothing else in moto is touched: S3, Batch, notifications and SQS semantics (visibility, long polling,
redrive to the DLQ, receive counts) are moto's own code.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

SHIM_SUMMARY = (
    "moto SQS shim (benchmarks/moto_fast_sqs.py): lazy Queue.attributes, one clock read per queue scan, "
    "receipt-handle index for DeleteMessage; API behaviour unchanged"
)


def _now_ms() -> float:
    return time.time() * 1000.0


class LazyQueueAttributes(Mapping[str, Any]):
    """The same keys and values as moto's `Queue.attributes` dict, each computed when read."""

    def __init__(self, queue: Any) -> None:
        getters: dict[str, Callable[[], Any]] = {}
        for name in queue.BASE_ATTRIBUTES:
            getters[name] = _getter(queue, _snake(name))
        if queue.fifo_queue:
            for name in queue.FIFO_ATTRIBUTES:
                getters[name] = _getter(queue, _snake(name))
        if queue.kms_master_key_id:
            for name in queue.KMS_ATTRIBUTES:
                getters[name] = _getter(queue, _snake(name))
        if queue.policy:
            getters["Policy"] = lambda: queue.policy
        if queue.redrive_policy:
            import json

            getters["RedrivePolicy"] = lambda: json.dumps(queue.redrive_policy)
        self._getters = getters

    def __getitem__(self, name: str) -> Any:
        value = self._getters[name]()
        # moto renders booleans as "true"/"false"
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._getters)

    def __len__(self) -> int:
        return len(self._getters)


@functools.cache
def _snake(name: str) -> str:
    from moto.core.utils import camelcase_to_underscores

    return str(camelcase_to_underscores(name))


def _getter(obj: Any, attr: str) -> Callable[[], Any]:
    return lambda: getattr(obj, attr)


_handles: dict[str, Any] = {}  # receipt handle → moto Message (the live object, not the response copy)


def apply() -> None:
    from moto.sqs import models

    queue_cls, message_cls = models.Queue, models.Message

    queue_cls.attributes = property(LazyQueueAttributes)  # type: ignore[assignment]

    def messages(self: Any) -> list[Any]:
        now = _now_ms()
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def not_visible(self: Any) -> int:
        now = _now_ms()
        return sum(1 for m in self._messages if not now > m.visible_at)

    def delayed(self: Any) -> int:
        now = _now_ms()
        return sum(1 for m in self._messages if now < m.delayed_until)

    queue_cls.messages = property(messages)  # type: ignore[assignment]
    queue_cls.approximate_number_of_messages_not_visible = property(not_visible)  # type: ignore[assignment]
    queue_cls.approximate_number_of_messages_delayed = property(delayed)  # type: ignore[assignment]

    def had_receipt_handle(self: Any, receipt_handle: str) -> bool:
        return receipt_handle == self.receipt_handle or receipt_handle in self._old_receipt_handles

    message_cls.had_receipt_handle = had_receipt_handle  # type: ignore[method-assign]

    original_mark_received = message_cls.mark_received

    def mark_received(self: Any, visibility_timeout: int | None = None) -> None:
        original_mark_received(self, visibility_timeout)
        _handles[self.receipt_handle] = self

    message_cls.mark_received = mark_received  # type: ignore[method-assign]

    original_delete = queue_cls.delete_message

    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # moto: deleting again is accepted
        message = _handles.get(receipt_handle)
        # `in` on the list compares identities in C: far cheaper than moto's per-message Python calls.
        if message is None or message not in self._messages:
            original_delete(self, receipt_handle)  # unknown or moved (DLQ) handle: moto's own answer
            return
        self._messages.remove(message)
        self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)
        for handle in message.all_receipt_handles:
            _handles.pop(handle, None)

    queue_cls.delete_message = delete_message  # type: ignore[method-assign]

    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    apply()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
