"""The transfers of one worker run: owns the S3 client, the ranged downloads and the s3transfer managers
(streams, uploads), so `cancel()` stops everything in flight and aborts multipart uploads.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import WorkerError
from core.locations import Location
from core.objectstore import ObjectInfo
from core.s3client import default_s3_client, sse_arguments, translate_error
from worker.transfer.ranged import PartsUnsupported, RangedDownload
from worker.transfer.result import TransferResult, download_error, unwrap
from worker.transfer.streams import HashingPipe, ProvideSize, StreamHandle, download_args
from worker.transfer.tuning import Tuning
from worker.transfer.verify import Expectation


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

    # -- downloads ---------------------------------------------------------------------------------
    def download(self, info: ObjectInfo, dest: Path, expect: Expectation) -> TransferResult:
        """Download to `dest` through a temp file renamed only after size and checksum verification."""

        def fetch(tmp: Path) -> str:
            try:
                return self._download_into(info, tmp, expect)
            except PartsUnsupported:
                # The store cannot serve parts by number: ranges, and a multipart ETag verifies nothing.
                size_only = Expectation("size-only", None, None, note="the store cannot serve parts")
                return self._download_into(info, tmp, size_only)

        return self._into_file(info, dest, fetch, info.size)

    def download_ranges(self, info: ObjectInfo, dest: Path, ranges: list[tuple[int, int]]) -> TransferResult:
        """Only `ranges` of the object into a sparse file of its full size at `dest` (a shard child's
        bytes: the holes are never read). Every GET is pinned like a whole download (the version id,
        IfMatch the ETag), so a changed object fails instead of mixing; each span is checked for its
        length. The result's `bytes` are the bytes fetched."""
        size_only = Expectation("ranges-size", None, None, note="byte ranges of the object")
        fetched = sum(end - start for start, end in ranges)
        return self._into_file(
            info, dest, lambda tmp: self._download_into(info, tmp, size_only, ranges=ranges), fetched
        )

    def _into_file(
        self, info: ObjectInfo, dest: Path, fetch: Callable[[Path], str], nbytes: int
    ) -> TransferResult:
        """`fetch` writes a temp file beside `dest` and returns how it was verified; the file is renamed
        into place only then, and removed on any failure (a SIGTERM's Interrupted included)."""
        tmp = dest.with_name(f".{dest.name}.part")
        started = time.monotonic()
        try:
            verified = fetch(tmp)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, WorkerError) or not isinstance(exc, Exception):
                raise
            raise download_error(exc, info.location) from None
        os.replace(tmp, dest)
        seconds = time.monotonic() - started
        return TransferResult("download", str(info.location), str(dest), nbytes, seconds, verified, info)

    def _download_into(
        self, info: ObjectInfo, tmp: Path, expect: Expectation, ranges: list[tuple[int, int]] | None = None
    ) -> str:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if ranges is not None:
                os.ftruncate(fd, info.size)  # sparse: no block is allocated for the bytes not fetched
            job = RangedDownload(self.client, info, fd, expect, self._stop, self.tuning, ranges=ranges)
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
                loc.bucket, loc.key, target, extra_args=download_args(info), subscribers=[ProvideSize(info)]
            )
        )
        return StreamHandle(info, expect, target, future, mgr, time.monotonic())

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
            raise translate_error(unwrap(failure), dest, "upload") from None
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
