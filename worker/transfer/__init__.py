"""Moving bytes between S3 and the job: staged downloads, streamed downloads, uploads, verification.

s3transfer does the parallel ranged GETs, multipart uploads, retries of broken streams and the abort of
a failed multipart upload; botocore's standard retry mode does backoff on throttling and 5xx. This
module adds what they do not: checking what arrived against the object's checksum (or single-part ETag),
hashing in byte order while s3transfer writes ranges out of order, and one log line per transfer.

How downloads are verified: `worker.transfer.verify`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.awserrors import AwsFailure, classify
from core.errors import ChecksumMismatch, InternalError, TransientIOError, WorkerError
from core.locations import Location
from core.objectstore import ObjectInfo, default_s3_client, replace_into, sse_arguments, translate_error
from worker.transfer.verify import (
    CRC_ALGORITHMS,
    Crc,
    Digest,
    Expectation,
    HashlibDigest,
    expectation_for,
    make_digest,
    verify_received,
)

MIB = 1024 * 1024


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


@dataclass
class Span:
    """One GET's share of the object: bytes [start, end), or S3 part `part_number` (its range is
    learnt from the response's Content-Range)."""

    index: int
    start: int = 0
    end: int = 0
    part_number: int | None = None
    pos: int = 0  # next byte to write; the span is complete when pos == end
    digest: Any = None

    @property
    def known(self) -> bool:
        return self.part_number is None or self.end > 0


def plan_spans(size: int, span_bytes: int) -> list[Span]:
    """Contiguous spans of `span_bytes` covering `size` bytes (the last one shorter)."""
    span_bytes = max(1, span_bytes)
    return [
        Span(i, start, min(size, start + span_bytes), pos=start)
        for i, start in enumerate(range(0, size, span_bytes))
    ]


@dataclass(frozen=True)
class DownloadTuning:
    span_bytes: int  # bytes per ranged GET
    concurrency: int  # GETs in flight
    buffer_bytes: int  # each thread's receive buffer (bytes go socket -> buffer -> file, no other copy)


def download_tuning(size: int, *, ordered: bool = False) -> DownloadTuning:
    """Few, large GETs: each costs a request's CPU (signing, parsing) on a host the server may share.

    ALIGNBATCH_TRANSFER_CONCURRENCY threads (default two per CPU, 4-16: 4 did best on a 2-core host
    where the server shares the CPU; on EC2 the network bandwidth grows with the instance size and a
    real S3 connection carries ~100 MB/s) each fetch spans of ALIGNBATCH_TRANSFER_CHUNK_MIB (default:
    the object split four ways per thread, 8-64 MiB). A digest that needs bytes in order (SHA,
    single-part MD5) reads back behind the slowest thread, so it gets 8 MiB spans.
    """
    concurrency = max(
        1, _env_int("ALIGNBATCH_TRANSFER_CONCURRENCY", min(16, max(4, 2 * (os.cpu_count() or 2))))
    )
    explicit = _env_int("ALIGNBATCH_TRANSFER_CHUNK_MIB", 0) * MIB
    if explicit > 0:
        span = explicit
    elif ordered:
        span = 8 * MIB
    else:
        span = min(64 * MIB, max(8 * MIB, -(-size // (concurrency * 4))))
    # 256 KiB: in interleaved runs (2 GiB, seaweedfs) 1 MiB buffers cost 2-3x the kernel time of
    # 256 KiB ones (bytes leave the CPU cache between recv and pwrite/CRC); 64-128 KiB add syscalls.
    return DownloadTuning(span, concurrency, 256 * 1024)


class _SpanCheck:
    """Integrity of a ranged download, from what each span's thread saw (base: size only)."""

    def new_digest(self) -> Any:
        return None

    def progress(self, span: Span) -> None:
        return None

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def value(self, spans: list[Span]) -> str | None:
        return None


class _CombinedCrc(_SpanCheck):
    """Each thread CRCs its own span as it lands; the span CRCs are combined in file order at the end."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm

    def new_digest(self) -> Crc:
        return Crc(self.algorithm)

    def value(self, spans: list[Span]) -> str:
        total = Crc(self.algorithm)
        for span in sorted(spans, key=lambda s: s.start):
            total.extend(span.digest.crc, span.end - span.start)
        return total.value()


class _PartMd5(_SpanCheck):
    """Multipart ETag: MD5 of each part (fetched by part number, hashed by its own thread), then the MD5
    of the concatenated part digests, "-<parts>"."""

    def new_digest(self) -> HashlibDigest:
        return HashlibDigest("md5")

    def value(self, spans: list[Span]) -> str:
        ordered = sorted(spans, key=lambda s: s.part_number or 0)
        joined = b"".join(span.digest.digest() for span in ordered)
        return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(ordered)}"


class _OrderedReadBack(_SpanCheck):
    """A digest that needs the bytes in order (SHA-256/SHA-1, single-part MD5): a thread follows the
    frontier of contiguous bytes on disk and hashes them from the page cache while the rest arrives."""

    def __init__(self, algorithm: str, fd: int, spans: list[Span], size: int) -> None:
        digest = make_digest(algorithm)
        assert digest is not None
        self.digest = digest
        self._fd = fd
        self._spans = sorted(spans, key=lambda s: s.start)
        self._size = size
        self.hashed = 0
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="hash-in-order", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def progress(self, span: Span) -> None:
        with self._cond:
            self._cond.notify_all()

    def _frontier(self) -> int:
        for span in self._spans:
            if span.pos < span.end:
                return span.pos
        return self._size

    def _run(self) -> None:
        while self.hashed < self._size:
            with self._cond:
                while not self._stopped and self._frontier() <= self.hashed:
                    self._cond.wait()
                if self._stopped:
                    return
                limit = self._frontier()
            while self.hashed < limit:
                chunk = os.pread(self._fd, min(8 * MIB, limit - self.hashed), self.hashed)
                if not chunk:
                    return
                self.digest.update(chunk)
                self.hashed += len(chunk)

    def value(self, spans: list[Span]) -> str:
        self._thread.join()
        if self.hashed != self._size:
            raise InternalError(f"hashed {self.hashed} of {self._size} downloaded bytes")
        return self.digest.value()


class _PartsUnsupported(Exception):
    """The server ignored ?partNumber= (no Content-Range / parts count): fall back to ranges."""


# Errors while reading a response body: the GET is repeated from the first byte not yet written.
def _body_errors() -> tuple[type[BaseException], ...]:
    import http.client

    from botocore import exceptions as bex
    from urllib3 import exceptions as u3

    return (
        OSError,
        http.client.HTTPException,
        bex.ResponseStreamingError,
        bex.ReadTimeoutError,
        bex.ConnectionClosedError,
        u3.ProtocolError,
        u3.ReadTimeoutError,
        _ShortBody,
    )


class _ShortBody(Exception):
    pass


def _body_reader(body: Any) -> Any:
    """`readinto(view) -> n` for a botocore StreamingBody. The http.client response underneath reads
    the socket straight into our buffer; urllib3's and botocore's read() would allocate and copy each
    chunk twice more. Falls back to read() if the layers ever change shape."""
    raw = getattr(body, "_raw_stream", None)
    fp = getattr(raw, "_fp", None)
    if fp is not None and callable(getattr(fp, "readinto", None)) and getattr(raw, "_decoder", None) is None:
        return fp.readinto

    def readinto(view: memoryview) -> int:
        data = body.read(len(view))
        view[: len(data)] = data
        return len(data)

    return readinto


def _release(body: Any, complete: bool) -> None:
    """Give a connection whose response was read to its end back to the pool; close any other (a
    connection with unread bytes must never be reused)."""
    raw = getattr(body, "_raw_stream", None)
    fp = getattr(raw, "_fp", None)
    drained = fp is None or (callable(getattr(fp, "isclosed", None)) and fp.isclosed())
    if complete and drained and raw is not None and callable(getattr(raw, "release_conn", None)):
        raw.release_conn()
    else:
        with contextlib.suppress(Exception):
            body.close()


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


class RangedDownload:
    """Fetch an object into an open file with `concurrency` threads, each taking the next span, reading
    the body into its own buffer and writing it with pwrite at its offset (no queue, no writer thread,
    no copy besides socket -> buffer -> page cache). A broken body is re-requested from the first
    missing byte (IfMatch the ETag, so an object replaced meanwhile fails instead of mixing)."""

    ATTEMPTS = 5

    def __init__(
        self, client: Any, info: ObjectInfo, fd: int, expect: Expectation, stop: threading.Event
    ) -> None:
        self.client = client
        self.info = info
        self.fd = fd
        self.expect = expect
        self._cancel = stop  # shared with Transfers.cancel()
        self._failed = threading.Event()
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        algo = expect.algorithm
        ordered = algo is not None and algo not in CRC_ALGORITHMS and algo != "md5-parts"
        self.tuning = download_tuning(info.size, ordered=ordered)
        self.check: _SpanCheck
        if algo == "md5-parts":
            self.spans = [Span(i, part_number=i + 1) for i in range(expect.parts)]
            self.check = _PartMd5()
        else:
            self.spans = plan_spans(info.size, self.tuning.span_bytes)
            if algo in CRC_ALGORITHMS:
                self.check = _CombinedCrc(algo)
            elif algo is not None:
                self.check = _OrderedReadBack(algo, fd, self.spans, info.size)
            else:
                self.check = _SpanCheck()
        self._next = 0

    @property
    def received(self) -> int:
        return sum(span.pos - span.start for span in self.spans if span.known)

    def run(self) -> None:
        """Download everything; raises the first failure (after stopping the other threads)."""
        threads = [
            threading.Thread(target=self._worker, name=f"get-{n}", daemon=True)
            for n in range(min(self.tuning.concurrency, len(self.spans)))
        ]
        self.check.start()
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.05)  # short joins keep the main thread's signal handlers prompt
        except BaseException:  # Interrupted by SIGTERM: stop the threads, then let it propagate
            self._failed.set()
            for t in threads:
                t.join(5)
            raise
        finally:
            if self._error is not None or self._failed.is_set() or self._cancel.is_set():
                self.check.stop()
        if self._error is not None:
            raise self._error
        if self._cancel.is_set():
            raise TransientIOError(f"download {self.info.location}: cancelled")

    def verify(self) -> str:
        """Size, coverage, then the checksum; returns how the download was verified."""
        loc = self.info.location
        spans = sorted(self.spans, key=lambda s: s.start)
        edge = 0
        for span in spans:
            if span.start != edge or span.pos != span.end:
                raise TransientIOError(f"download {loc}: bytes {edge}-{span.start} missing")
            edge = span.end
        if edge != self.info.size:
            raise TransientIOError(f"download {loc}: received {edge} bytes, object has {self.info.size}")
        got = self.check.value(self.spans)
        if got is None or self.expect.value is None:
            return "size-only"
        if got != self.expect.value:
            raise ChecksumMismatch(
                f"download {loc}: {self.expect.algorithm} of received bytes {got} does not match the "
                f"object's {self.expect.value}; the transfer was corrupted, retry"
            )
        return self.expect.method

    def _take(self) -> Span | None:
        with self._lock:
            if self._next >= len(self.spans):
                return None
            span = self.spans[self._next]
            self._next += 1
            return span

    def _stopping(self) -> bool:
        return self._failed.is_set() or self._cancel.is_set()

    def _worker(self) -> None:
        view = memoryview(bytearray(self.tuning.buffer_bytes))
        errors = _body_errors()
        while not self._stopping():
            span = self._take()
            if span is None:
                return
            try:
                self._fetch(span, view, errors)
            except BaseException as exc:
                with self._lock:
                    if self._error is None:
                        self._error = exc
                self._failed.set()
                return

    def _request(self, span: Span) -> dict[str, Any]:
        args: dict[str, Any] = {"Bucket": self.info.location.bucket, "Key": self.info.location.key}
        if self.info.version_id:
            args["VersionId"] = self.info.version_id
        if self.info.etag:
            args["IfMatch"] = f'"{self.info.etag}"'
        if span.known:
            args["Range"] = f"bytes={span.pos}-{span.end - 1}"
        else:
            args["PartNumber"] = span.part_number
        return dict(self.client.get_object(**args))

    def _learn_part(self, span: Span, resp: dict[str, Any]) -> None:
        """Where part N lies, from `Content-Range: bytes a-b/size` of its GET."""
        text = str(resp.get("ContentRange") or "")
        count = resp.get("PartsCount")
        if not text.startswith("bytes ") or (count is not None and int(count) != len(self.spans)):
            whole = int(resp.get("ContentLength", -1)) == self.info.size
            if text or len(self.spans) != 1 or not whole:
                raise _PartsUnsupported()
            span.start, span.end = 0, self.info.size  # a one-part upload served without a range
        else:
            first, _, last = text[6:].partition("/")[0].partition("-")
            span.start, span.end = int(first), int(last) + 1
        span.pos = span.start

    def _check_range(self, span: Span, resp: dict[str, Any]) -> None:
        """The body must start at the byte asked for (a whole-object 200 only when that is the span)."""
        if str(resp.get("ContentRange") or "").startswith(f"bytes {span.pos}-"):
            return
        if span.pos == 0 and span.end == self.info.size:
            return
        raise TransientIOError(
            f"download {self.info.location}: the server ignored the range {span.pos}-{span.end - 1}"
        )

    def _fetch(self, span: Span, view: memoryview, errors: tuple[type[BaseException], ...]) -> None:
        span.digest = self.check.new_digest()
        attempt = 0
        while span.pos < span.end or not span.known:
            resp = self._request(span)  # botocore retries the request itself (throttling, 5xx)
            body = resp["Body"]
            complete = False
            try:
                if not span.known:
                    self._learn_part(span, resp)
                else:
                    self._check_range(span, resp)
                readinto = _body_reader(body)
                while span.pos < span.end:
                    if self._stopping():
                        return
                    n = readinto(view[: min(len(view), span.end - span.pos)])
                    if not n:
                        raise _ShortBody(f"body ended {span.end - span.pos} bytes early")
                    chunk = view[:n]
                    _pwrite_all(self.fd, chunk, span.pos)
                    if span.digest is not None:
                        span.digest.update(chunk)
                    span.pos += n
                    self.check.progress(span)
                complete = True
            except errors as exc:
                attempt += 1
                if attempt >= self.ATTEMPTS:
                    raise TransientIOError(
                        f"download {self.info.location}: reading bytes from {span.pos} failed "
                        f"{attempt} times ({type(exc).__name__}: {exc})"
                    ) from None
                time.sleep(min(2.0, 0.1 * 2**attempt))
            finally:
                _release(body, complete)


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
    """s3transfer's configuration for uploads and streams (overridable for benchmarks and small hosts).

    Uploads: 16 MiB parts, 6 at once (on seaweedfs, whose upload path is CPU-bound on the same cores,
    6 requests at once did as well as 10; 32-64 MiB parts were at most a few percent faster than 16 -
    within the noise - and the e2e fault scenario relies on 16 MiB parts). A stream keeps at most
    `max_in_memory_download_chunks` chunks of 8 MiB in memory, which bounds RSS.
    """
    from s3transfer.manager import TransferConfig

    chunk = _env_int("ALIGNBATCH_TRANSFER_CHUNK_MIB", 8 if streaming else 16) * MIB
    concurrency = _env_int("ALIGNBATCH_TRANSFER_CONCURRENCY", 8 if streaming else 6)
    return TransferConfig(
        multipart_threshold=chunk,
        multipart_chunksize=chunk,
        max_request_concurrency=concurrency,
        max_submission_concurrency=4,
        # Chunks waiting for the single writer thread are held in memory: bound them (24 x 256 KiB) so a
        # slow disk or the in-order hashing cannot make RSS grow with the object size.
        max_io_queue_size=24,
        io_chunksize=256 * 1024,
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
        self._stop = threading.Event()  # tells ranged downloads in flight to stop
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
        started = time.monotonic()
        try:
            try:
                verified = self._download_into(info, tmp, expect)
            except _PartsUnsupported:
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
            job = RangedDownload(self.client, info, fd, expect, self._stop)
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
