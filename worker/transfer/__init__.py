"""Moving bytes between S3 and the job: staged downloads, streamed downloads, uploads, verification.

s3transfer does the parallel ranged GETs, multipart uploads, retries of broken streams and the abort of
a failed multipart upload; botocore's standard retry mode does backoff on throttling and 5xx. This
module adds what they do not: checking what arrived against the object's checksum (or single-part ETag),
hashing in byte order while s3transfer writes ranges out of order, and one log line per transfer.

How downloads are verified: `worker.transfer.verify`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.awserrors import AwsFailure, classify
from core.errors import TransientIOError, WorkerError
from core.locations import Location
from core.objectstore import ObjectInfo, default_s3_client, replace_into, sse_arguments, translate_error
from worker.transfer.ranged import PartsUnsupported, RangedDownload
from worker.transfer.tuning import Tuning
from worker.transfer.verify import (
    Crc,
    Digest,
    Expectation,
    expectation_for,
    make_digest,
    verify_received,
)

# --------------------------------------------------------------------------------------------------
# Streaming into a pipe (bytes arrive in order)
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Staged downloads: parallel ranged GETs straight into the file
# --------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# The transfer layer
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferResult:
    direction: str  # download | stream | upload | copy
    source: str
    destination: str
    bytes: int
    seconds: float
    verified: str  # how integrity was established
    info: ObjectInfo | None = None

    @property
    def mb_per_s(self) -> float:
        return round(self.bytes / 1e6 / self.seconds, 1) if self.seconds > 0 else 0.0

    def log_fields(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "source": self.source,
            "destination": self.destination,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "mb_per_s": self.mb_per_s,
            "verified": self.verified,
        }


class _ProvideSize:
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


class Transfers:
    """Owns the S3 client and s3transfer managers of one worker run; `cancel()` stops everything."""

    def __init__(
        self, client: Any = None, *, sse_kms_key_id: str | None = None, tuning: Tuning | None = None
    ) -> None:
        self._client = client
        self.tuning = tuning if tuning is not None else Tuning.from_env()
        self.sse_kms_key_id = sse_kms_key_id
        self._managers: list[Any] = []
        self._futures: list[Any] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()  # tells ranged downloads in flight to stop
        self.cancelled = False

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = default_s3_client()
        return self._client

    def _manager(self, *, streaming: bool = False) -> Any:
        from s3transfer.manager import TransferManager

        mgr = TransferManager(self.client, config=self.tuning.s3transfer_config(streaming=streaming))
        with self._lock:
            self._managers.append(mgr)
        return mgr

    def _track(self, future: Any) -> Any:
        with self._lock:
            self._futures.append(future)
            if self.cancelled:
                future.cancel()
        return future

    # -- small reads for the input checks ----------------------------------------------------------
    def read_range(self, loc: Location, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        try:
            resp = self.client.get_object(
                Bucket=loc.bucket, Key=loc.key, Range=f"bytes={start}-{start + length - 1}"
            )
            return bytes(resp["Body"].read())
        except Exception as exc:
            raise translate_error(exc, loc, "read") from None

    def read_tail(self, loc: Location, length: int) -> bytes:
        try:
            resp = self.client.get_object(Bucket=loc.bucket, Key=loc.key, Range=f"bytes=-{length}")
            return bytes(resp["Body"].read())
        except Exception as exc:
            raise translate_error(exc, loc, "read") from None

    # -- downloads ---------------------------------------------------------------------------------
    def download(self, info: ObjectInfo, dest: Path, expect: Expectation) -> TransferResult:
        """Download to `dest` through a temp file renamed only after size and checksum verification."""
        loc = info.location
        tmp = dest.with_name(f".{dest.name}.part")
        started = time.monotonic()
        try:
            try:
                verified = self._download_into(info, tmp, expect)
            except PartsUnsupported:
                # The store cannot serve parts by number: ranges, and a multipart ETag verifies nothing.
                size_only = Expectation("size-only", None, None, note="the store cannot serve parts")
                verified = self._download_into(info, tmp, size_only)
        except BaseException as exc:  # includes Interrupted raised by the SIGTERM handler
            tmp.unlink(missing_ok=True)
            if isinstance(exc, WorkerError) or not isinstance(exc, Exception):
                raise
            raise _download_error(exc, loc) from None
        os.replace(tmp, dest)
        seconds = time.monotonic() - started
        return TransferResult("download", str(loc), str(dest), info.size, seconds, verified, info)

    def _download_into(self, info: ObjectInfo, tmp: Path, expect: Expectation) -> str:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            job = RangedDownload(self.client, info, fd, expect, self._stop, self.tuning)
            job.run()
            return job.verify()
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)

    def start_stream(self, info: ObjectInfo, fd: int, expect: Expectation) -> StreamHandle:
        """Start feeding the object into `fd` (the tool's stdin) in byte order; returns at once."""
        loc = info.location
        target = HashingPipe(fd, expect.digest())
        mgr = self._manager(streaming=True)
        future = self._track(
            mgr.download(
                loc.bucket, loc.key, target, extra_args=_download_args(info), subscribers=[_ProvideSize(info)]
            )
        )
        return StreamHandle(self, info, expect, target, future, mgr, time.monotonic())

    # -- uploads -----------------------------------------------------------------------------------
    def upload(
        self,
        path: Path,
        dest: Location,
        *,
        metadata: dict[str, str],
        content_type: str = "application/octet-stream",
    ) -> TransferResult:
        """Upload with a CRC64NVME checksum S3 validates, SSE, provenance metadata; multipart when large.

        botocore computes the CRC64NVME of each request body (awscrt, ~7 GB/s) and S3 checks it on
        arrival; for a multipart upload S3 combines the part CRCs into the object's FULL_OBJECT
        CRC64NVME (its default algorithm), which later downloads verify end to end. No pass over the
        file of our own. On failure or cancellation s3transfer aborts the multipart upload, so no
        partial object remains.
        """
        size = path.stat().st_size
        extra = {
            "ChecksumAlgorithm": "CRC64NVME",
            "ContentType": content_type,
            "Metadata": metadata,
            **sse_arguments(self.sse_kms_key_id),
        }
        mgr = self._manager()
        started = time.monotonic()
        future = None
        failure: BaseException | None = None
        try:
            future = self._track(mgr.upload(str(path), dest.bucket, dest.key, extra_args=extra))
            future.result()
        except BaseException as exc:  # includes Interrupted raised by the SIGTERM handler
            failure = exc
            if future is not None and not future.done():
                future.cancel()  # s3transfer then aborts the multipart upload
        finally:
            mgr.shutdown()
        if failure is not None:
            if isinstance(failure, WorkerError) or not isinstance(failure, Exception):
                raise failure
            raise translate_error(_unwrap(failure), dest, "upload") from None
        seconds = time.monotonic() - started
        return TransferResult("upload", str(path), str(dest), size, seconds, "checksum-crc64nvme")

    # -- lifecycle ---------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Cancel every transfer in flight (s3transfer then aborts multipart uploads) and wait."""
        self._stop.set()
        with self._lock:
            self.cancelled = True
            futures = list(self._futures)
            managers = list(self._managers)
        for fut in futures:
            if not fut.done():
                fut.cancel()
        for mgr in managers:
            # Best effort while tearing down: a manager whose transfer failed may raise again here.
            with contextlib.suppress(Exception):
                mgr.shutdown()


class StreamHandle:
    """A download feeding a pipe; `finish()` waits for it and verifies what was streamed."""

    def __init__(
        self,
        owner: Transfers,
        info: ObjectInfo,
        expect: Expectation,
        target: HashingPipe,
        future: Any,
        manager: Any,
        started: float,
    ) -> None:
        self.owner = owner
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
            raise _download_error(exc, loc)
        seconds = time.monotonic() - self.started
        verified = verify_received(loc, self.expect, self.info.size, self.target)
        return TransferResult("stream", str(loc), "stdin", self.target.written, seconds, verified, self.info)


def _download_args(info: ObjectInfo) -> dict[str, str]:
    args = {"ChecksumMode": "ENABLED"}
    if info.version_id:
        args["VersionId"] = info.version_id
    return args


def _unwrap(exc: BaseException) -> BaseException:
    # s3transfer wraps some failures (RetriesExceededError carries the last socket error).
    last = getattr(exc, "last_exception", None)
    return last if isinstance(last, BaseException) else exc


def _download_error(exc: BaseException, loc: Location) -> WorkerError:
    exc = _unwrap(exc)
    if classify(exc).failure is AwsFailure.PRECONDITION:
        return TransientIOError(f"download {loc}: the object changed while it was being read; retry")
    if type(exc).__name__ == "CancelledError":
        return TransientIOError(f"download {loc}: cancelled")
    return translate_error(exc, loc, "download")


def _is_special(path: Path) -> bool:
    """An existing destination that is neither a regular file nor a directory (through symlinks)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def copy_local(src: Path, dest: Path) -> TransferResult:
    """Put a finished local output in place atomically (rename on the same filesystem, else copy+rename)."""
    import shutil
    import tempfile

    started = time.monotonic()
    size = src.stat().st_size
    if _is_special(dest):
        # /dev/null, a FIFO, /dev/stdout: write into it. Renaming over it would replace the device node
        # itself (as root, `-o /dev/null` turned /dev/null into a regular file for every process).
        with open(src, "rb") as fin, open(dest, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1024 * 1024)
        return TransferResult("copy", str(src), str(dest), size, time.monotonic() - started, "local-write")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    try:
        try:
            os.replace(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        replace_into(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return TransferResult("copy", str(src), str(dest), size, time.monotonic() - started, "local-rename")


__all__ = [
    "Crc",
    "Digest",
    "Expectation",
    "StreamHandle",
    "TransferResult",
    "Transfers",
    "copy_local",
    "expectation_for",
    "make_digest",
]
