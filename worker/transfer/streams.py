"""Streamed downloads: s3transfer feeds an object into the tool's stdin in byte order while the bytes are
hashed on the way, and the stream is verified when it ends.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from core.objectstore import ObjectInfo
from worker.transfer.result import TransferResult, download_error
from worker.transfer.verify import Digest, Expectation, verify_received


class HashingPipe:
    """A non-seekable target (the tool's stdin): s3transfer delivers bytes in order; hash and forward.

    When the tool stops reading (it exited), the rest is hashed and discarded: a tool that failed on
    bytes corrupted in transit must be reported as a transfer failure (retryable), not as bad input.
    """

    def __init__(self, fd: int, digest: Digest | None) -> None:
        self._fd = fd
        self._digest = digest
        self.written = 0  # bytes received (forwarded or, after the reader left, discarded)
        self.forwarded = 0
        self.reader_gone = False

    def seekable(self) -> bool:
        return False

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        if self._digest is not None:
            self._digest.update(view)
        done = 0
        while done < len(view) and not self.reader_gone:
            try:
                done += os.write(self._fd, view[done:])
            except BrokenPipeError:
                self.reader_gone = True
        self.forwarded += done
        self.written += len(view)
        return len(view)

    def flush(self) -> None:
        return None

    @property
    def hashed(self) -> int:
        return self.written  # bytes arrive in order

    @property
    def digest(self) -> Digest | None:
        return self._digest


class ProvideSize:
    """s3transfer subscriber: we already did the HEAD, so spare s3transfer its own."""

    def __init__(self, info: ObjectInfo) -> None:
        self._info = info

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self._info.size)
        if self._info.etag:
            future.meta.provide_object_etag(f'"{self._info.etag}"')

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        return None

    def on_done(self, future: Any, **kwargs: Any) -> None:
        return None


class StreamHandle:
    """A download feeding a pipe; `finish()` waits for it and verifies what was streamed."""

    def __init__(
        self,
        info: ObjectInfo,
        expect: Expectation,
        target: HashingPipe,
        future: Any,
        manager: Any,
        started: float,
    ) -> None:
        self.info = info
        self.expect = expect
        self.target = target
        self.future = future
        self.manager = manager
        self.started = started

    def done(self) -> bool:
        return bool(self.future.done())

    @property
    def remaining(self) -> int:
        return max(0, self.info.size - self.target.written)

    def cancel(self) -> None:
        self.future.cancel()
        with contextlib.suppress(Exception):
            self.manager.shutdown()

    def wait(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the download; return its exception (None on success) without raising."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.future.done():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            # Poll in short steps so signal handlers run promptly in the main thread.
            time.sleep(0.05 if remaining is None else min(0.05, remaining))
        if not self.future.done():
            return None
        try:
            self.future.result()
        except BaseException as exc:
            return exc
        return None

    def finish(self) -> TransferResult:
        loc = self.info.location
        exc = self.wait()
        self.manager.shutdown()
        if exc is not None:
            raise download_error(exc, loc)
        seconds = time.monotonic() - self.started
        verified = verify_received(loc, self.expect, self.info.size, self.target)
        return TransferResult("stream", str(loc), "stdin", self.target.written, seconds, verified, self.info)


def download_args(info: ObjectInfo) -> dict[str, str]:
    args = {"ChecksumMode": "ENABLED"}
    if info.version_id:
        args["VersionId"] = info.version_id
    return args
