"""Local event source: a watched directory standing in for the S3 inbox.

Each file that appears under the inbox directory becomes an S3-shaped notification (bucket = the inbox
directory, key = the path relative to it, ETag = "<mtime_ns>-<size>"), so local events take exactly the
same parse → ledger → plan path as SQS ones. A file is reported once it has not changed for
`settle_seconds` (a copy in progress is not picked up half-written); hidden files (".name") are skipped,
which also covers our own atomic-write temporaries. What was acknowledged is remembered in memory; after a
restart everything is reported again and the ledger counts the repeats as duplicates.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from controller.events import ObjectEvent, s3_notification_body
from controller.sources.base import Message


class LocalInboxSource:
    kind = "local"

    def __init__(self, inbox: str | Path, *, settle_seconds: float = 1.0, poll_seconds: float = 1.0) -> None:
        self.inbox = Path(inbox)
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.settle_seconds = settle_seconds
        self.poll_seconds = poll_seconds
        self._seen: set[tuple[str, str]] = set()
        self._in_flight: set[tuple[str, str]] = set()
        self.unsettled = 0

    def _scan(self) -> list[ObjectEvent]:
        now = time.time()
        events: list[ObjectEvent] = []
        unsettled = 0
        present: set[tuple[str, str]] = set()
        for dirpath, dirnames, filenames in os.walk(self.inbox):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fname in sorted(filenames):
                if fname.startswith("."):
                    continue
                full = Path(dirpath, fname)
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue
                key = full.relative_to(self.inbox).as_posix()
                etag = f"{st.st_mtime_ns}-{st.st_size}"
                present.add((key, etag))
                if (key, etag) in self._seen or (key, etag) in self._in_flight:
                    continue
                if now - st.st_mtime < self.settle_seconds:
                    unsettled += 1
                    continue
                events.append(
                    ObjectEvent(
                        bucket=str(self.inbox),
                        key=key,
                        size=st.st_size,
                        etag=etag,
                        version_id=None,
                        event_name="ObjectCreated:Put",
                        event_time=datetime.fromtimestamp(st.st_mtime, tz=UTC),
                    )
                )
        self.unsettled = unsettled
        # Forget files that were removed or rewritten since: the set stays the size of the inbox.
        self._seen &= present
        return events

    def receive(self, max_messages: int = 10) -> list[Message]:
        events = self._scan()[: max(1, max_messages)]
        if not events and self.poll_seconds:
            time.sleep(self.poll_seconds)
            events = self._scan()[: max(1, max_messages)]
        out = []
        for ev in events:
            self._in_flight.add((ev.key, ev.etag))
            out.append(
                Message(
                    message_id=f"{ev.key}@{ev.etag}",
                    body=s3_notification_body([ev]),
                    receipt=(ev.key, ev.etag),
                    sent_at=time.time(),
                )
            )
        return out

    def ack(self, messages: Sequence[Message]) -> None:
        for m in messages:
            self._in_flight.discard(m.receipt)
            self._seen.add(m.receipt)

    def release(self, messages: Sequence[Message]) -> None:
        """Not acknowledged (processing failed): report the files again on a later scan."""
        for m in messages:
            self._in_flight.discard(m.receipt)

    def extend(self, messages: Sequence[Message], seconds: int) -> None:
        return None  # nothing else consumes a local inbox

    def depth(self) -> dict[tuple[str, str], int]:
        pending = len(self._scan()) + self.unsettled
        return {("inbox", "visible"): pending, ("inbox", "in_flight"): len(self._in_flight)}
