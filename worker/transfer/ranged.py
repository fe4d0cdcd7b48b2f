"""Staged downloads: parallel ranged GETs read straight from the socket and pwritten into the file,
each span hashed by the thread that fetched it (CRCs combined, part MD5s joined) while it lands.

Why our own downloader instead of s3transfer's (which still streams and uploads): s3transfer's download
path copies every chunk twice (http.client read, then urllib3) and queues it to a single writer thread,
which for an in-order checksum re-reads out-of-order ranges from the page cache. Earlier sessions
measured boto3's defaults at 533 MB/s on seaweedfs (shared 2-core host) where this module does ~1.4 GB/s
(commit 79ca736; docs/worker.md, "Figures", compares it with s5cmd and aws). s3transfer also cannot
verify a multipart ETag part by part (`?partNumber=N`) or combine per-span CRC64NVMEs, and its CRT
manager would mean leaving botocore's endpoint and credential handling. The price is one reach into
botocore internals (`_body_reader`: the http.client response under the StreamingBody), with a plain
read() fallback should those layers change shape.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any

from core.errors import ChecksumMismatch, TransientIOError
from core.objectstore import ObjectInfo
from worker.transfer.spans import (
    CombinedCrc,
    OrderedReadBack,
    PartMd5,
    Span,
    SpanCheck,
    plan_range_spans,
    plan_spans,
)
from worker.transfer.tuning import Tuning
from worker.transfer.verify import CRC_ALGORITHMS, Expectation


class PartsUnsupported(Exception):
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
        self,
        client: Any,
        info: ObjectInfo,
        fd: int,
        expect: Expectation,
        stop: threading.Event,
        tuning: Tuning,
        ranges: list[tuple[int, int]] | None = None,
    ) -> None:
        self.client = client
        # Only these [start, end) ranges of the object (a shard child's): no whole-object checksum can
        # hold for them, so each span is checked for its length alone (the engine checks every BGZF
        # block's CRC32 as it inflates it).
        self.ranges = ranges
        self.info = info
        self.fd = fd
        self.expect = expect
        self._cancel = stop  # shared with Transfers.cancel()
        self._failed = threading.Event()
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        algo = expect.algorithm
        ordered = algo is not None and algo not in CRC_ALGORITHMS and algo != "md5-parts"
        self.check: SpanCheck
        if ranges is not None:
            if algo is not None:
                raise ValueError("a download of byte ranges cannot be checked against the whole object")
            self.tuning = tuning.ranged(sum(end - start for start, end in ranges))
            self.spans = plan_range_spans(ranges, self.tuning.span_bytes)
            self.check = SpanCheck()
            self._next = 0
            return
        self.tuning = tuning.ranged(info.size, ordered=ordered)
        if algo == "md5-parts":
            self.spans = [Span(i, part_number=i + 1) for i in range(expect.parts)]
            self.check = PartMd5()
        else:
            self.spans = plan_spans(info.size, self.tuning.span_bytes)
            if algo in CRC_ALGORITHMS:
                self.check = CombinedCrc(algo)
            elif algo is not None:
                self.check = OrderedReadBack(algo, fd, self.spans, info.size)
            else:
                self.check = SpanCheck()
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
        if self.ranges is not None:
            for span in spans:
                if span.pos != span.end:
                    raise TransientIOError(f"download {loc}: bytes {span.pos}-{span.end} missing")
            return "ranges-size"
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
                raise PartsUnsupported()
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
