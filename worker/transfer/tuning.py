"""How hard transfers push: requests in flight, bytes per request, receive buffers.

Read once from the environment per worker run into one frozen `Tuning`; each kind of transfer (staged
download, stream, upload) applies its own measured default where a setting is unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024
CONCURRENCY_ENV = "ALIGNBATCH_TRANSFER_CONCURRENCY"
CHUNK_ENV = "ALIGNBATCH_TRANSFER_CHUNK_MIB"


@dataclass(frozen=True)
class DownloadTuning:
    span_bytes: int  # bytes per ranged GET
    concurrency: int  # GETs in flight
    buffer_bytes: int  # each thread's receive buffer (bytes go socket -> buffer -> file, no other copy)


@dataclass(frozen=True)
class Tuning:
    """The two knobs every transfer shares; None means "this kind of transfer's own default"."""

    concurrency: int | None = None  # ALIGNBATCH_TRANSFER_CONCURRENCY: requests in flight
    chunk_bytes: int | None = None  # ALIGNBATCH_TRANSFER_CHUNK_MIB: bytes per request (span, part, chunk)
    cpus: int = 2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Tuning:
        env = os.environ if environ is None else environ
        concurrency = _int(env.get(CONCURRENCY_ENV))
        chunk_mib = _int(env.get(CHUNK_ENV))
        return cls(
            # 0 or less would stall every transfer: it means one request at a time.
            concurrency=None if concurrency is None else max(1, concurrency),
            chunk_bytes=chunk_mib * MIB if chunk_mib is not None and chunk_mib > 0 else None,
            cpus=os.cpu_count() or 2,
        )

    def ranged(self, size: int, *, ordered: bool = False) -> DownloadTuning:
        """Staged downloads: few, large GETs, since each costs a request's CPU (signing, parsing) on a
        host the server may share.

        Threads: default two per CPU, 4-16 (4 did best on a 2-core host where the server shares the CPU;
        on EC2 the network bandwidth grows with the instance size and a real S3 connection carries
        ~100 MB/s). Spans: default the object split four ways per thread, 8-64 MiB. A digest that needs
        bytes in order (SHA, single-part MD5) reads back behind the slowest thread, so it gets 8 MiB spans.
        """
        concurrency = self.concurrency or min(16, max(4, 2 * self.cpus))
        if self.chunk_bytes is not None:
            span = self.chunk_bytes
        elif ordered:
            span = 8 * MIB
        else:
            span = min(64 * MIB, max(8 * MIB, -(-size // (concurrency * 4))))
        # 256 KiB: in interleaved runs (2 GiB, seaweedfs) 1 MiB buffers cost 2-3x the kernel time of
        # 256 KiB ones (bytes leave the CPU cache between recv and pwrite/CRC); 64-128 KiB add syscalls.
        return DownloadTuning(span, concurrency, 256 * 1024)

    def s3transfer_config(self, *, streaming: bool = False) -> Any:
        """s3transfer's configuration for uploads and streams.

        Uploads: 16 MiB parts, 6 at once (on seaweedfs, whose upload path is CPU-bound on the same cores,
        6 requests at once did as well as 10; 32-64 MiB parts were at most a few percent faster than 16 -
        within the noise - and the e2e fault scenario relies on 16 MiB parts). Streams: 8 MiB chunks, 8 at
        once; a stream keeps at most `max_in_memory_download_chunks` chunks in memory, which bounds RSS.
        """
        from s3transfer.manager import TransferConfig

        chunk = self.chunk_bytes or (8 if streaming else 16) * MIB
        concurrency = self.concurrency or (8 if streaming else 6)
        return TransferConfig(
            multipart_threshold=chunk,
            multipart_chunksize=chunk,
            max_request_concurrency=concurrency,
            max_submission_concurrency=4,
            # Chunks waiting for the single writer thread are held in memory: bound them (24 x 256 KiB) so
            # a slow disk or the in-order hashing cannot make RSS grow with the object size.
            max_io_queue_size=24,
            io_chunksize=256 * 1024,
            num_download_attempts=5,
            max_in_memory_upload_chunks=concurrency,
            # A stream is paced by the tool: a few chunks ahead are enough, and they bound RSS.
            max_in_memory_download_chunks=6 if streaming else max(4, concurrency),
        )


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None
