"""Verification logic without a server: expectations, digests, span plans and combining span checksums."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import zlib
from pathlib import Path

from core.locations import Location
from core.objectstore import ObjectInfo
from worker.staging import Scratch, create_scratch, ensure_space, safe_name
from worker.transfer import (
    Crc,
    expectation_for,
    make_digest,
)
from worker.transfer.ranged import CombinedCrc, OrderedReadBack, PartMd5, Span, plan_spans

LOC = Location.s3("bkt", "x.bam")


def test_expectations() -> None:
    full = ObjectInfo(LOC, 10, "abc", checksum="crc32:AAAAAA==")
    assert expectation_for(full).method == "checksum-crc32"
    mp_full = ObjectInfo(LOC, 10, "abc-3", checksum="crc32:AAAAAA==", checksum_type="FULL_OBJECT")
    assert expectation_for(mp_full).method == "checksum-crc32"
    composite = ObjectInfo(LOC, 10, "abc-3", checksum="sha256:xyz-3", checksum_type="COMPOSITE")
    assert expectation_for(composite).method == "size-only"
    untyped_mp = ObjectInfo(LOC, 10, "abc-3", checksum="crc32:AAAAAA==")
    assert expectation_for(untyped_mp).method == "size-only"
    plain = ObjectInfo(LOC, 10, "5d41402abc4b2a76b9719d911017c592")
    assert expectation_for(plain).method == "etag-md5"
    kms = expectation_for(plain, sse="aws:kms")
    assert kms.method == "size-only" and "aws:kms" in kms.note
    nvme = expectation_for(
        ObjectInfo(LOC, 10, "abc-2", checksum="crc64nvme:AAAA", checksum_type="FULL_OBJECT")
    )
    assert nvme.method == "checksum-crc64nvme"
    # A multipart ETag is checked part by part when staged; a stream has no part boundaries.
    mp = ObjectInfo(LOC, 10, "5d41402abc4b2a76b9719d911017c592-3")
    parts = expectation_for(mp)
    assert (parts.method, parts.parts) == ("etag-md5-parts", 3)
    assert expectation_for(mp, streaming=True).method == "size-only"
    assert expectation_for(mp, sse="aws:kms").method == "size-only"


def test_digests_match_s3_encodings() -> None:
    data = b"hello"
    crc = make_digest("crc32")
    assert crc is not None
    crc.update(data)
    assert crc.value() == base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    md5 = make_digest("md5")
    assert md5 is not None
    md5.update(data)
    assert md5.value() == hashlib.md5(data).hexdigest()
    nvme = make_digest("crc64nvme")
    assert nvme is not None
    nvme.update(b"")
    assert nvme.value() == "AAAAAAAAAAA="  # 8 bytes, S3's CRC64NVME encoding


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


def test_safe_names() -> None:
    assert safe_name("a b ü.bam") == "a b ü.bam"
    assert safe_name("..") == "__"
    assert "/" not in safe_name("a/b")
    long = safe_name("x" * 300 + ".bam")
    assert long.endswith(".bam") and len(long.encode()) < 100


def test_scratch_is_scoped_and_space_checked(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    s = create_scratch(tmp_path, "job-1", "2")
    assert s.root == tmp_path / "alignbatch" / "job-1" / "2"
    assert isinstance(s, Scratch)
    ensure_space(s, 1024, "x")
    from core.errors import ScratchFull

    monkeypatch.setenv("ALIGNBATCH_SCRATCH_RESERVE_MIB", str(1 << 40))
    try:
        ensure_space(s, 1024, "1 input file(s)")
    except ScratchFull as exc:
        assert "needs" in str(exc) and str(s.root) in str(exc) and exc.exit_code == 73
    else:
        raise AssertionError("expected ScratchFull")
    s.cleanup()
    assert not s.root.exists()
