"""What a download is checked against, and digests in S3's encodings."""

from __future__ import annotations

import base64
import hashlib
import zlib
from pathlib import Path

from core.locations import Location
from core.objectstore import ObjectInfo
from worker.transfer.verify import expectation_for, make_digest

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


def test_a_local_files_tag_is_never_taken_for_an_md5(tmp_path: Path) -> None:
    from core.objectstore import LocalObjectStore

    loc = Location.file(str(tmp_path / "x.bam"))
    info = LocalObjectStore().write_bytes(loc, b"x")
    head = LocalObjectStore().head(loc)
    assert head is not None and not head.content_etag and not info.content_etag
    assert expectation_for(
        ObjectInfo(loc, 1, "0123456789abcdef0123456789abcdef", content_etag=False)
    ).method == ("size-only")
