"""Local event source: a watched directory standing in for the S3 inbox.

Each file that appears under the inbox directory becomes an S3-shaped notification (bucket = the inbox
directory, key = the path relative to it, ETag = "<mtime_ns>-<size>"), so local events take exactly the
same parse → ledger → plan path as SQS ones. A file is reported once it has not changed for
`settle_seconds` (a copy in progress is not picked up half-written); hidden files (".name") are skipped,
which also covers our own atomic-write temporaries. Symbolic links (to files or directories) are
skipped with an `inbox.skipped` event naming them: a link can point anywhere (`x.bam -> /etc/passwd`), and
nothing outside the inbox directory is ever read. So is a name that is not UTF-8 (bytes the file system
allows, which no key, ledger row or log line can hold). What was acknowledged is remembered in memory; after a
restart everything is reported again and the ledger counts the repeats as duplicates.

One walk of the inbox queues every settled file it finds, and `receive` hands them out from that queue,
walking again only once it is empty. Walking for each batch of ten made a burst of N files cost N²/10
stats. A queued file is stat'ed once more as it is handed out, so one removed or rewritten since the walk
is not reported in its old version.
"""

from __future__ import annotations

import os
import stat
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from controller.events import ObjectEvent, s3_notification_body
from controller.sources.base import Message
from core.logs import get_logger


def _etag(st: os.stat_result) -> str:
    """A file version's identity, in the place of S3's ETag: a rewrite changes mtime or size."""
    return f"{st.st_mtime_ns}-{st.st_size}"


class LocalInboxSource:
    kind = "local"

    def __init__(self, inbox: str | Path, *, settle_seconds: float = 1.0, poll_seconds: float = 1.0) -> None:
        self.inbox = Path(inbox)
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.settle_seconds = settle_seconds
        self.poll_seconds = poll_seconds
        self._seen: set[tuple[str, str]] = set()
        self._in_flight: set[tuple[str, str]] = set()
        self._ready: deque[ObjectEvent] = deque()  # settled, not yet handed out, from the last walk
        self.unsettled = 0
        self.walks = 0  # how many times the inbox was walked (tests, debugging)
        self._last_walk = float("-inf")  # time.monotonic() of the last walk
        self._skipped: set[tuple[str, str]] = set()  # (name, reason) already logged: once, not every walk
        self.log = get_logger(component="inbox")

    def _skip(self, name: str, reason: str, skipped: set[tuple[str, str]]) -> None:
        skipped.add((name, reason))
        if (name, reason) not in self._skipped:
            self._skipped.add((name, reason))
            self.log.warning("inbox.skipped", file=name, inbox=str(self.inbox), reason=reason)

    @staticmethod
    def _not_utf8(name: str) -> bool:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:  # os.walk hands undecodable bytes over as surrogates
            return True
        return False

    def _scan(self) -> list[ObjectEvent]:
        self.walks += 1
        self._last_walk = time.monotonic()
        now = time.time()
        events: list[ObjectEvent] = []
        unsettled = 0
        present: set[tuple[str, str]] = set()
        skipped: set[tuple[str, str]] = set()
        root = str(self.inbox)
        # os.walk does not descend into linked directories (followlinks=False); they are named below.
        for dirpath, dirnames, filenames in os.walk(root):
            # Plain strings, one relpath per directory: Path objects per file made an idle walk of
            # 10,000 files cost ~0.27 s of CPU.
            rel = os.path.relpath(dirpath, root)
            prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            kept = []
            for d in sorted(dirnames):
                if d.startswith("."):
                    continue
                if self._not_utf8(d):
                    self._skip(ascii(prefix + d), "directory name is not UTF-8; rename it", skipped)
                elif os.path.islink(os.path.join(dirpath, d)):
                    self._skip(prefix + d, "a symbolic link to a directory; copy the files in", skipped)
                else:
                    kept.append(d)
            dirnames[:] = kept
            for fname in sorted(filenames):
                if fname.startswith("."):
                    continue
                if self._not_utf8(fname):
                    self._skip(ascii(prefix + fname), "file name is not UTF-8; rename it", skipped)
                    continue
                try:
                    # lstat: a link is not followed out of the inbox (`x.bam -> /etc/passwd`).
                    st = os.lstat(os.path.join(dirpath, fname))
                except FileNotFoundError:
                    continue
                key = prefix + fname
                if stat.S_ISLNK(st.st_mode):
                    self._skip(key, "a symbolic link; copy the file into the inbox instead", skipped)
                    continue
                if not stat.S_ISREG(st.st_mode):
                    self._skip(key, "not a regular file (a FIFO, socket or device)", skipped)
                    continue
                etag = _etag(st)
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
        self._skipped &= skipped  # a link replaced by a file (or removed) is judged afresh
        return events

    def _current(self, ev: ObjectEvent) -> bool:
        """The queued version is still the file's version (not removed or rewritten since the walk)."""
        try:
            st = (self.inbox / ev.key).lstat()  # replaced by a link since the walk: not current
        except FileNotFoundError:
            return False
        return stat.S_ISREG(st.st_mode) and _etag(st) == ev.etag

    def _take(self, max_messages: int) -> list[ObjectEvent]:
        events: list[ObjectEvent] = []
        while self._ready and len(events) < max_messages:
            ev = self._ready.popleft()
            if self._current(ev):
                events.append(ev)
        return events

    def receive(self, max_messages: int = 10) -> list[Message]:
        max_messages = max(1, max_messages)
        events = self._take(max_messages)
        if not events:  # the queue is empty (or held only stale versions): walk again
            # At most one walk per poll_seconds, like a long poll: an idle inbox costs one walk a period.
            wait = self._last_walk + self.poll_seconds - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._ready.extend(self._scan())
            events = self._take(max_messages)
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
        # From the last walk, not a walk of its own: receive() walks whenever its queue runs dry.
        pending = len(self._ready) + self.unsettled
        return {("inbox", "visible"): pending, ("inbox", "in_flight"): len(self._in_flight)}
