"""Span plans and the per-span checks of a staged download (CRCs combined, part MD5s, in-order read-back)."""

from __future__ import annotations

import base64
import hashlib
import os
import random
from pathlib import Path

from core.locations import Location
from worker.transfer import (
    Crc,
)
from worker.transfer.spans import CombinedCrc, OrderedReadBack, PartMd5, Span, plan_spans

LOC = Location.s3("bkt", "x.bam")


def test_span_plan_covers_the_object() -> None:
    spans = plan_spans(10_000_001, 4_000_000)
    assert [(s.start, s.end) for s in spans] == [
        (0, 4_000_000),
        (4_000_000, 8_000_000),
        (8_000_000, 10_000_001),
    ]
    assert plan_spans(0, 8) == []


def _landed(data: bytes, bounds: list[tuple[int, int]], digest_of: object) -> list[Span]:
    """Spans as the download threads leave them: complete, each with its own digest of its bytes."""
    spans = []
    for i, (start, end) in enumerate(bounds):
        span = Span(i, start, end, pos=end)
        span.digest = digest_of.new_digest()  # type: ignore[attr-defined]
        span.digest.update(data[start:end])
        spans.append(span)
    random.Random(3).shuffle(spans)  # threads finish in any order
    return spans


def test_span_crcs_combine_to_the_whole_object_crc() -> None:
    data = os.urandom(1_000_003)
    bounds = [(s.start, s.end) for s in plan_spans(len(data), 65_536)]
    for algo in ("crc32", "crc32c", "crc64nvme"):
        whole = Crc(algo)
        whole.update(data)
        check = CombinedCrc(algo)
        assert check.value(_landed(data, bounds, check)) == whole.value()


def test_multipart_etag_from_part_md5s() -> None:
    data = os.urandom(300_000)
    bounds = [(0, 100_000), (100_000, 200_000), (200_000, 300_000)]
    expected = hashlib.md5(b"".join(hashlib.md5(data[a:b]).digest() for a, b in bounds)).hexdigest() + "-3"
    check = PartMd5()
    spans = _landed(data, bounds, check)
    for span in spans:
        span.part_number = span.index + 1
    assert check.value(spans) == expected


def test_ordered_read_back_follows_spans_landing_out_of_order(tmp_path: Path) -> None:
    data = os.urandom(3_000_000)
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        spans = plan_spans(len(data), 250_000)
        check = OrderedReadBack("sha256", fd, spans, len(data))
        check.start()
        for span in random.Random(7).sample(spans, len(spans)):
            os.pwrite(fd, data[span.start : span.end], span.start)
            span.pos = span.end
            check.progress(span)
        assert check.value(spans) == base64.b64encode(hashlib.sha256(data).digest()).decode()
    finally:
        os.close(fd)
