"""Moving bytes between S3 and the job: staged downloads, streamed downloads, uploads, verification.

s3transfer does the parallel ranged GETs, multipart uploads, retries of broken streams and the abort of
a failed multipart upload; botocore's standard retry mode does backoff on throttling and 5xx. This
module adds what they do not: checking what arrived against the object's checksum (or single-part ETag),
hashing in byte order while s3transfer writes ranges out of order, and one log line per transfer.

Verification of a download, strongest first:
1. the object's full-object checksum (CRC32, SHA-256, SHA-1; CRC32C/CRC64NVME with awscrt), requested
   with ChecksumMode=ENABLED;
2. the ETag, which is the MD5 of the bytes only for single-part uploads without SSE-KMS/SSE-C;
3. otherwise the size alone (multipart ETag without a full-object checksum) - said so in the log line.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from worker.errors import ChecksumMismatch, InternalError, TransientIOError, WorkerError
from worker.objectstore import ObjectInfo, default_s3_client, replace_into, sse_arguments, translate_error
from worker.uris import Location

MIB = 1024 * 1024


# --------------------------------------------------------------------------------------------------
# Digests
# --------------------------------------------------------------------------------------------------


class Digest(Protocol):
    def update(self, data: bytes | memoryview) -> None: ...

    def value(self) -> str: ...


class _Crc32:
    """zlib's CRC-32 (the S3 CRC32 algorithm), faster than botocore's pure wrapper; base64 big-endian."""

    def __init__(self) -> None:
        self._crc = 0

    def update(self, data: bytes | memoryview) -> None:
        self._crc = zlib.crc32(data, self._crc)

    def value(self) -> str:
        return base64.b64encode(self._crc.to_bytes(4, "big")).decode("ascii")


class _Hashlib:
    def __init__(self, name: str, *, b64: bool = True) -> None:
        self._h = hashlib.new(name)
        self._b64 = b64

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)

    def value(self) -> str:
        if self._b64:
            return base64.b64encode(self._h.digest()).decode("ascii")
        return self._h.hexdigest()


class _Botocore:
    """CRC32C/CRC64NVME through botocore's awscrt-backed classes (only when awscrt is installed)."""

    def __init__(self, impl: Any) -> None:
        self._impl = impl

    def update(self, data: bytes | memoryview) -> None:
        self._impl.update(bytes(data))

    def value(self) -> str:
        return str(self._impl.b64digest())


def make_digest(algorithm: str) -> Digest | None:
    """A digest for an S3 checksum algorithm name ("crc32", "sha256", ...) or "md5" (hex, for ETags)."""
    if algorithm == "crc32":
        return _Crc32()
    if algorithm in ("sha256", "sha1"):
        return _Hashlib(algorithm)
    if algorithm == "md5":
        return _Hashlib("md5", b64=False)
    from botocore import httpchecksum

    if getattr(httpchecksum, "HAS_CRT", False):
        if algorithm == "crc32c":
            return _Botocore(httpchecksum.CrtCrc32cChecksum())
        if algorithm == "crc64nvme" and hasattr(httpchecksum, "CrtCrc64NvmeChecksum"):
            return _Botocore(httpchecksum.CrtCrc64NvmeChecksum())
    return None


@dataclass(frozen=True)
class Expectation:
    """What a download will be checked against."""

    method: str  # "checksum-crc32", "etag-md5", "size-only"
    algorithm: str | None
    value: str | None
    note: str = ""

    def digest(self) -> Digest | None:
        return make_digest(self.algorithm) if self.algorithm else None


def expectation_for(info: ObjectInfo, *, sse: str | None = None) -> Expectation:
    multipart = "-" in info.etag
    etag_not_md5 = (sse or "").startswith(("aws:kms", "sse-c"))
    if info.checksum:
        algo, _, value = info.checksum.partition(":")
        # A multipart object's checksum covers the whole object only when S3 says FULL_OBJECT; otherwise
        # it is a checksum of part checksums ("<b64>-<parts>"), not recomputable without part boundaries.
        full = info.checksum_type == "FULL_OBJECT" or (not multipart and info.checksum_type != "COMPOSITE")
        if full and "-" not in value and make_digest(algo) is not None:
            return Expectation(f"checksum-{algo}", algo, value)
    if info.location.is_s3 and info.etag and not multipart and not etag_not_md5:
        return Expectation("etag-md5", "md5", info.etag)
    reason = "multipart upload without a full-object checksum" if multipart else "no usable checksum"
    if etag_not_md5 and not multipart:
        reason = f"{sse} object without a full-object checksum (its ETag is not an MD5)"
    return Expectation("size-only", None, None, note=f"only the size can be verified: {reason}")


# --------------------------------------------------------------------------------------------------
# Targets that hash in byte order
# --------------------------------------------------------------------------------------------------


class OrderedHashingFile:
    """A seekable file target that hashes bytes in file order although s3transfer writes ranges in any order.

    Contiguous writes at the hashed frontier are hashed from memory; writes ahead of it are recorded as
    extents and read back from the page cache once the gap before them is filled, so memory stays
    constant whatever the order. s3transfer performs all writes from a single I/O thread.
    """

    def __init__(self, path: Path, digest: Digest | None) -> None:
        self._fh = open(path, "w+b", buffering=0)  # noqa: SIM115 - closed by close()
        self._digest = digest
        self._pos = 0
        self._frontier = 0  # bytes [0, frontier) are hashed
        self._extents: dict[int, int] = {}  # start -> end of written, unhashed extents
        self._ends: dict[int, int] = {}  # end -> start, to merge adjacent extents
        self.written = 0

    # file protocol used by s3transfer
    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = self._fh.seek(offset, whence)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        start = self._pos
        done = 0
        while done < len(view):
            done += self._fh.write(view[done:]) or 0
        self._pos += done
        self.written += done
        if self._digest is not None:
            self._account(start, start + done, view)
        return done

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self._fh.close()

    def _account(self, start: int, end: int, view: memoryview) -> None:
        assert self._digest is not None
        if start == self._frontier:
            self._digest.update(view)
            self._frontier = end
            self._drain()
            return
        # Merge with an extent that ends where this one starts, then with one that starts where it ends.
        if start in self._ends:
            prev = self._ends.pop(start)
            start = prev
        if end in self._extents:
            nxt = self._extents.pop(end)
            self._ends.pop(nxt, None)
            end = nxt
        self._extents[start] = end
        self._ends[end] = start

    def _drain(self) -> None:
        assert self._digest is not None
        while self._frontier in self._extents:
            end = self._extents.pop(self._frontier)
            self._ends.pop(end, None)
            pos = self._frontier
            while pos < end:
                chunk = os.pread(self._fh.fileno(), min(8 * MIB, end - pos), pos)
                if not chunk:
                    raise InternalError(f"read-back of downloaded bytes at {pos} returned nothing")
                self._digest.update(chunk)
                pos += len(chunk)
            self._frontier = end

    @property
    def hashed(self) -> int:
        return self._frontier

    @property
    def digest(self) -> Digest | None:
        return self._digest


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


class HashingTarget(Protocol):
    written: int

    @property
    def hashed(self) -> int: ...

    @property
    def digest(self) -> Digest | None: ...


def verify_received(loc: Location, expect: Expectation, size: int, target: HashingTarget) -> str:
    """Size, then checksum of what arrived; returns how it was verified, raises on any difference."""
    if target.written != size:
        raise TransientIOError(f"download {loc}: received {target.written} bytes, object has {size}")
    if expect.algorithm is None or target.digest is None:
        return "size-only"
    if target.hashed != target.written:
        raise InternalError(f"download {loc}: hashed {target.hashed} of {target.written} bytes")
    got = target.digest.value()
    if got != expect.value:
        raise ChecksumMismatch(
            f"download {loc}: {expect.algorithm} of received bytes {got} does not match the object's "
            f"{expect.value}; the transfer was corrupted, retry"
        )
    return expect.method


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


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


def transfer_config(*, streaming: bool = False) -> Any:
    """TransferConfig tuned for large BAM/CRAM objects (overridable for benchmarks and small hosts).

    Chunks of 16 MiB keep the number of requests low while 10 concurrent requests fill a 10-25 Gbit
    link; a stream keeps at most `max_in_memory_download_chunks` chunks in memory, which bounds RSS.
    """
    from s3transfer.manager import TransferConfig

    chunk = _env_int("ALIGNBATCH_TRANSFER_CHUNK_MIB", 8 if streaming else 16) * MIB
    concurrency = _env_int("ALIGNBATCH_TRANSFER_CONCURRENCY", 10)
    return TransferConfig(
        multipart_threshold=chunk,
        multipart_chunksize=chunk,
        max_request_concurrency=concurrency,
        max_submission_concurrency=4,
        # Chunks waiting for the single writer thread are held in memory: bound them (24 x 1 MiB) so a
        # slow disk or the in-order hashing cannot make RSS grow with the object size.
        max_io_queue_size=24,
        io_chunksize=1 * MIB,
        num_download_attempts=5,
        max_in_memory_upload_chunks=concurrency,
        # A stream is paced by the tool: a few chunks ahead are enough, and they bound RSS.
        max_in_memory_download_chunks=6 if streaming else max(4, concurrency),
    )


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

    def __init__(self, client: Any = None, *, sse_kms_key_id: str | None = None) -> None:
        self._client = client
        self.sse_kms_key_id = sse_kms_key_id
        self._managers: list[Any] = []
        self._futures: list[Any] = []
        self._lock = threading.Lock()
        self.cancelled = False

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = default_s3_client()
        return self._client

    def _manager(self, *, streaming: bool = False) -> Any:
        from s3transfer.manager import TransferManager

        mgr = TransferManager(self.client, config=transfer_config(streaming=streaming))
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
        target = OrderedHashingFile(tmp, expect.digest())
        mgr = self._manager()
        started = time.monotonic()
        future = None
        failure: BaseException | None = None
        try:
            future = self._track(
                mgr.download(
                    loc.bucket,
                    loc.key,
                    target,
                    extra_args=_download_args(info),
                    subscribers=[_ProvideSize(info)],
                )
            )
            future.result()
        except BaseException as exc:  # includes Interrupted raised by the SIGTERM handler
            failure = exc
            if future is not None and not future.done():
                future.cancel()
        finally:
            mgr.shutdown()  # after a cancel this only waits for the worker threads to stop
        if failure is not None:
            target.close()
            tmp.unlink(missing_ok=True)
            if isinstance(failure, WorkerError) or not isinstance(failure, Exception):
                raise failure
            raise _download_error(failure, loc) from None
        target.close()
        seconds = time.monotonic() - started
        try:
            verified = verify_received(loc, expect, info.size, target)
        except WorkerError:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, dest)
        return TransferResult("download", str(loc), str(dest), target.written, seconds, verified, info)

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
        """Upload with a full-object CRC32 S3 validates, SSE, provenance metadata; multipart when large.

        On failure or cancellation s3transfer aborts the multipart upload, so no partial object remains.
        """
        crc = _Crc32()
        size = 0
        with open(path, "rb") as fh:
            while chunk := fh.read(8 * MIB):
                crc.update(chunk)
                size += len(chunk)
        extra = {
            # The full-object CRC32 is checked by S3 against what it stored (FULL_OBJECT type for
            # multipart), and lets any later download verify end to end.
            "ChecksumAlgorithm": "CRC32",
            "ChecksumCRC32": crc.value(),
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
        return TransferResult("upload", str(path), str(dest), size, seconds, "checksum-crc32")

    # -- lifecycle ---------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Cancel every transfer in flight (s3transfer then aborts multipart uploads) and wait."""
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
    from botocore.exceptions import ClientError

    exc = _unwrap(exc)
    if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
        "PreconditionFailed",
        "412",
    ):
        return TransientIOError(f"download {loc}: the object changed while it was being read; retry")
    if type(exc).__name__ == "CancelledError":
        return TransientIOError(f"download {loc}: cancelled")
    return translate_error(exc, loc, "download")


def copy_local(src: Path, dest: Path) -> TransferResult:
    """Put a finished local output in place atomically (rename on the same filesystem, else copy+rename)."""
    import shutil
    import tempfile

    started = time.monotonic()
    dest.parent.mkdir(parents=True, exist_ok=True)
    size = src.stat().st_size
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
