"""What a download is checked against, and the digests that check it: S3's checksums, ETags, sizes.

Verification of a download, strongest first:
1. the object's full-object checksum (CRC32, SHA-256, SHA-1; CRC32C/CRC64NVME with awscrt), requested
   with ChecksumMode=ENABLED;
2. the ETag, which is the MD5 of the bytes only for single-part uploads without SSE-KMS/SSE-C;
3. otherwise the size alone (multipart ETag without a full-object checksum) - said so in the log line.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Protocol

from core.errors import ChecksumMismatch, InternalError, TransientIOError
from core.locations import Location
from core.objectstore import ObjectInfo

CRC_ALGORITHMS = ("crc32", "crc32c", "crc64nvme")
_CRC_BYTES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8}


class Digest(Protocol):
    def update(self, data: bytes | memoryview) -> None: ...

    def value(self) -> str: ...


class Crc:
    """S3's CRC checksums through awscrt (hardware CRC32/CRC32C/CRC64NVME: 2-7 GB/s per core, where
    zlib's CRC32 manages ~0.4 GB/s here). CRCs combine, so ranges hashed apart are joined in order
    without reading anything twice. Value: base64 of the big-endian CRC, as S3 reports it."""

    def __init__(self, algorithm: str) -> None:
        from awscrt import checksums

        self.algorithm = algorithm
        self._update = getattr(checksums, algorithm)
        self._combine = getattr(checksums, f"combine_{algorithm}")
        self.crc = 0

    def update(self, data: bytes | memoryview) -> None:
        self.crc = self._update(data, self.crc)

    def extend(self, crc: int, length: int) -> None:
        """Append the CRC of `length` further bytes computed elsewhere."""
        self.crc = self._combine(self.crc, crc, length)

    def value(self) -> str:
        return base64.b64encode(self.crc.to_bytes(_CRC_BYTES[self.algorithm], "big")).decode("ascii")


class HashlibDigest:
    def __init__(self, name: str, *, b64: bool = True) -> None:
        self._h = hashlib.new(name, usedforsecurity=False)
        self._b64 = b64

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)  # hashlib releases the GIL on large buffers

    def digest(self) -> bytes:
        return self._h.digest()

    def value(self) -> str:
        if self._b64:
            return base64.b64encode(self._h.digest()).decode("ascii")
        return self._h.hexdigest()


def make_digest(algorithm: str) -> Digest | None:
    """A digest for an S3 checksum algorithm name ("crc64nvme", "sha256", ...) or "md5" (hex, for ETags)."""
    if algorithm in CRC_ALGORITHMS:
        return Crc(algorithm)
    if algorithm in ("sha256", "sha1"):
        return HashlibDigest(algorithm)
    if algorithm == "md5":
        return HashlibDigest("md5", b64=False)
    return None


@dataclass(frozen=True)
class Expectation:
    """What a download will be checked against."""

    method: str  # "checksum-crc64nvme", "etag-md5", "etag-md5-parts", "size-only"
    algorithm: str | None  # a make_digest name, or "md5-parts" (multipart ETag)
    value: str | None
    note: str = ""
    parts: int = 0  # multipart ETag: number of parts

    def digest(self) -> Digest | None:
        return make_digest(self.algorithm) if self.algorithm else None


def expectation_for(info: ObjectInfo, *, sse: str | None = None, streaming: bool = False) -> Expectation:
    """How a download of `info` can be verified; `streaming`: bytes arrive in order without part
    boundaries, so a multipart ETag cannot be checked."""
    multipart = "-" in info.etag
    etag_not_md5 = (sse or "").startswith(("aws:kms", "sse-c"))
    if info.checksum:
        algo, _, value = info.checksum.partition(":")
        # A multipart object's checksum covers the whole object only when S3 says FULL_OBJECT; otherwise
        # it is a checksum of part checksums ("<b64>-<parts>"), not recomputable without part boundaries.
        full = info.checksum_type == "FULL_OBJECT" or (not multipart and info.checksum_type != "COMPOSITE")
        if full and "-" not in value and make_digest(algo) is not None:
            return Expectation(f"checksum-{algo}", algo, value)
    if info.content_etag and info.etag and not etag_not_md5:
        if not multipart:
            return Expectation("etag-md5", "md5", info.etag)
        # A multipart ETag is the MD5 of the parts' MD5s, "-<parts>": fetching each part by number
        # gives its exact bytes, so each part is hashed by the thread that fetches it.
        digest, _, count = info.etag.partition("-")
        if count.isdigit() and int(count) >= 1 and len(digest) == 32 and not streaming:
            return Expectation("etag-md5-parts", "md5-parts", info.etag, parts=int(count))
    reason = "multipart upload without a full-object checksum" if multipart else "no usable checksum"
    if etag_not_md5:
        reason = f"{sse} object without a full-object checksum (its ETag is not an MD5)"
    return Expectation("size-only", None, None, note=f"only the size can be verified: {reason}")


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
