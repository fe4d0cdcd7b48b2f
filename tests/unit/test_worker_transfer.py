"""Verification logic without a server: expectations and in-order hashing of out-of-order writes."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import zlib
from pathlib import Path

from worker.objectstore import ObjectInfo
from worker.staging import Scratch, create_scratch, ensure_space, safe_name
from worker.transfer import OrderedHashingFile, expectation_for, make_digest
from worker.uris import Location

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
    assert expectation_for(ObjectInfo(LOC, 10, "abc", checksum="crc64nvme:AAAA")).method in (
        "checksum-crc64nvme",
        "etag-md5",
    )


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


def test_ordered_hashing_of_shuffled_ranges(tmp_path: Path) -> None:
    data = os.urandom(3_000_000)
    chunks = [(o, data[o : o + 100_000]) for o in range(0, len(data), 100_000)]
    random.Random(7).shuffle(chunks)
    digest = make_digest("sha256")
    target = OrderedHashingFile(tmp_path / "f", digest)
    for offset, chunk in chunks:
        # s3transfer writes each range as several io chunks in order
        target.seek(offset)
        target.write(chunk[:40_000])
        target.write(chunk[40_000:])
    target.close()
    assert target.hashed == len(data) == target.written
    assert digest is not None and digest.value() == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert (tmp_path / "f").read_bytes() == data


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
    from worker.errors import ScratchFull

    monkeypatch.setenv("ALIGNBATCH_SCRATCH_RESERVE_MIB", str(1 << 40))
    try:
        ensure_space(s, 1024, "1 input file(s)")
    except ScratchFull as exc:
        assert "needs" in str(exc) and str(s.root) in str(exc) and exc.exit_code == 73
    else:
        raise AssertionError("expected ScratchFull")
    s.cleanup()
    assert not s.root.exists()
