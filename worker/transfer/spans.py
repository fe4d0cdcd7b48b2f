"""The spans of a staged download, and how each span's thread proves its bytes: a CRC per span combined
in file order, an MD5 per part for a multipart ETag, or an in-order read-back for SHA/single-part MD5.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from typing import Any

from core.errors import InternalError
from worker.transfer.tuning import MIB
from worker.transfer.verify import Crc, HashlibDigest, make_digest


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


def plan_range_spans(ranges: list[tuple[int, int]], span_bytes: int) -> list[Span]:
    """Spans of at most `span_bytes` covering each [start, end) range (a shard's byte ranges)."""
    span_bytes = max(1, span_bytes)
    spans: list[Span] = []
    for start, end in ranges:
        for s in range(start, end, span_bytes):
            spans.append(Span(len(spans), s, min(end, s + span_bytes), pos=s))
    return spans


class SpanCheck:
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


class CombinedCrc(SpanCheck):
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


class PartMd5(SpanCheck):
    """Multipart ETag: MD5 of each part (fetched by part number, hashed by its own thread), then the MD5
    of the concatenated part digests, "-<parts>"."""

    def new_digest(self) -> HashlibDigest:
        return HashlibDigest("md5")

    def value(self, spans: list[Span]) -> str:
        ordered = sorted(spans, key=lambda s: s.part_number or 0)
        joined = b"".join(span.digest.digest() for span in ordered)
        return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(ordered)}"


class OrderedReadBack(SpanCheck):
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
