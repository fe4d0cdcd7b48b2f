"""A narrow object-store interface with an S3 and a local-directory implementation.

Both the worker and the controller use it for small objects (reports, rows, tables, ledger exports),
existence checks and the worker's header/EOF probes (`read_range`); `local_path` says whether a location
can be read in place. Bulk transfers of BAM/CRAM files go through `worker.transfer` on the same client
configuration.

Errors are translated into `core.errors` classes at this edge, so callers see one-line messages and
exit codes, never botocore exceptions.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from core.awserrors import error_code, object_absent
from core.locations import Location
from core.s3client import default_s3_client, sse_arguments, translate_error

# Checksum algorithms S3 may return, in the order we prefer to verify them, with the response field name.
CHECKSUM_FIELDS: tuple[tuple[str, str], ...] = (
    ("sha256", "ChecksumSHA256"),
    ("sha1", "ChecksumSHA1"),
    ("crc64nvme", "ChecksumCRC64NVME"),
    ("crc32c", "ChecksumCRC32C"),
    ("crc32", "ChecksumCRC32"),
)


@dataclass(frozen=True)
class ObjectInfo:
    location: Location
    size: int
    etag: str  # without quotes; for local files a content-independent f"{mtime_ns}-{size}"
    version_id: str | None = None
    checksum: str | None = None  # "<algorithm>:<base64>", e.g. "sha256:47DEQpj8..."
    last_modified: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    checksum_type: str | None = None  # S3's FULL_OBJECT or COMPOSITE (a checksum of part checksums)
    sse: str | None = None  # server-side encryption: "AES256", "aws:kms", "sse-c" (decides if ETag is MD5)
    # The store's ETag follows S3's rules (single-part, not SSE-KMS/SSE-C: the MD5 of the bytes); a local
    # file's tag says nothing about its content, so downloads may only verify what S3-style tags prove.
    content_etag: bool = True


class ObjectStore(Protocol):
    def head(self, loc: Location) -> ObjectInfo | None: ...

    def list(self, prefix: Location) -> Iterator[ObjectInfo]: ...

    def read_bytes(self, loc: Location) -> bytes: ...

    def read_range(self, loc: Location, start: int, length: int) -> bytes:
        """Up to `length` bytes from offset `start`; a negative `start` counts from the end (`-n`: the
        last n bytes, without knowing the size). Fewer bytes only at the end of the object."""
        ...

    def local_path(self, loc: Location) -> str | None:
        """The file on this host that holds `loc` (a tool can read it in place), or None when the bytes
        must be fetched first."""
        ...

    def write_bytes(
        self,
        loc: Location,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo: ...

    def delete(self, loc: Location) -> None: ...


def checksum_from_response(resp: dict[str, Any]) -> str | None:
    for algo, name in CHECKSUM_FIELDS:
        value = resp.get(name)
        if value:
            return f"{algo}:{value}"
    return None


def info_from_head(loc: Location, resp: dict[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        location=loc,
        size=int(resp.get("ContentLength", resp.get("Size", 0))),
        etag=str(resp.get("ETag", "")).strip('"'),
        version_id=resp.get("VersionId"),
        checksum=checksum_from_response(resp),
        last_modified=resp.get("LastModified"),
        metadata=dict(resp.get("Metadata") or {}),
        checksum_type=resp.get("ChecksumType"),
        sse=resp.get("ServerSideEncryption") or ("sse-c" if resp.get("SSECustomerAlgorithm") else None),
    )


def pin_arguments(loc: Location) -> dict[str, str]:
    """The request arguments that hold a read to the content `loc` is pinned to (core.locations):
    `VersionId` for a version, `IfMatch` for an expected ETag (S3 wants the ETag quoted)."""
    if loc.version_id is not None:
        return {"VersionId": loc.version_id}
    if loc.expected_etag is not None:
        return {"IfMatch": f'"{loc.expected_etag}"'}
    return {}


class S3ObjectStore:
    def __init__(self, client: Any = None, sse_kms_key_id: str | None = None) -> None:
        self.client = client if client is not None else default_s3_client()
        self.sse_kms_key_id = sse_kms_key_id

    def head(self, loc: Location) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            resp = self.client.head_object(
                Bucket=loc.bucket, Key=loc.key, ChecksumMode="ENABLED", **pin_arguments(loc)
            )
        except ClientError as exc:
            if object_absent(exc) or (
                loc.version_id is not None and error_code(exc) in ("400", "InvalidArgument")
            ):
                # A pinned version that is gone answers 404; one that never was a version id of this
                # bucket's style answers 400 (a HEAD has no body to say more). Either way: absent.
                return None
            raise translate_error(exc, loc, "head") from None
        except Exception as exc:
            raise translate_error(exc, loc, "head") from None
        return info_from_head(loc, resp)

    def list(self, prefix: Location) -> Iterator[ObjectInfo]:
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            pages = paginator.paginate(Bucket=prefix.bucket, Prefix=prefix.key)
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(
                        location=Location("s3", bucket=prefix.bucket, key=obj["Key"]),
                        size=int(obj["Size"]),
                        etag=str(obj.get("ETag", "")).strip('"'),
                        last_modified=obj.get("LastModified"),
                    )
        except Exception as exc:
            raise translate_error(exc, prefix, "list") from None

    def read_bytes(self, loc: Location) -> bytes:
        try:
            resp = self.client.get_object(
                Bucket=loc.bucket, Key=loc.key, ChecksumMode="ENABLED", **pin_arguments(loc)
            )
            return bytes(resp["Body"].read())
        except Exception as exc:
            raise translate_error(exc, loc, "read") from None

    def read_range(self, loc: Location, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        # A suffix range (`bytes=-n`) reads the tail without a HEAD for the size.
        spec = f"bytes={start}" if start < 0 else f"bytes={start}-{start + length - 1}"
        try:
            resp = self.client.get_object(Bucket=loc.bucket, Key=loc.key, Range=spec, **pin_arguments(loc))
            return bytes(resp["Body"].read())[:length]
        except Exception as exc:
            raise translate_error(exc, loc, "read") from None

    def local_path(self, loc: Location) -> str | None:
        return None

    def write_bytes(
        self,
        loc: Location,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
        try:
            resp = self.client.put_object(
                Bucket=loc.bucket,
                Key=loc.key,
                Body=data,
                ContentType=content_type,
                Metadata=dict(metadata or {}),
                ChecksumAlgorithm="SHA256",
                **sse_arguments(self.sse_kms_key_id),
            )
        except Exception as exc:
            raise translate_error(exc, loc, "write") from None
        return ObjectInfo(
            location=loc,
            size=len(data),
            etag=str(resp.get("ETag", "")).strip('"'),
            version_id=resp.get("VersionId"),
            checksum=checksum_from_response(resp) or f"sha256:{digest}",
            last_modified=None,
            metadata=dict(metadata or {}),
            checksum_type="FULL_OBJECT",
        )

    def delete(self, loc: Location) -> None:
        try:
            self.client.delete_object(Bucket=loc.bucket, Key=loc.key)
        except Exception as exc:
            raise translate_error(exc, loc, "delete") from None


class LocalObjectStore:
    """Files on a local disk behind the same interface. Writes are atomic (temp file + rename)."""

    def head(self, loc: Location) -> ObjectInfo | None:
        try:
            st = os.stat(loc.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise translate_error(exc, loc, "stat") from None
        if not os.path.isfile(loc.path):
            return None
        return _local_info(loc, st)

    def list(self, prefix: Location) -> Iterator[ObjectInfo]:
        # S3 prefix semantics: `dir/` lists everything under dir, `dir/ab` everything whose path starts so.
        base = Path(prefix.path)
        if prefix.path.endswith("/") or base.is_dir():
            root, name_prefix = base, ""
        else:
            root, name_prefix = base.parent, base.name
        if not root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fname in sorted(filenames):
                full = os.path.join(dirpath, fname)
                rel = os.path.relpath(full, root)
                if not rel.startswith(name_prefix) or fname.startswith(".alignbatch-tmp-"):
                    continue
                try:
                    yield _local_info(Location("file", path=full), os.stat(full))
                except FileNotFoundError:
                    continue

    def read_bytes(self, loc: Location) -> bytes:
        try:
            return Path(loc.path).read_bytes()
        except Exception as exc:
            raise translate_error(exc, loc, "read") from None

    def read_range(self, loc: Location, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        try:
            with open(loc.path, "rb") as fh:
                if start < 0:
                    start = max(0, os.fstat(fh.fileno()).st_size + start)
                fh.seek(start)
                return fh.read(length)
        except Exception as exc:
            raise translate_error(exc, loc, "read") from None

    def local_path(self, loc: Location) -> str | None:
        return loc.path

    def write_bytes(
        self,
        loc: Location,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        target = Path(loc.path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".alignbatch-tmp-", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                replace_into(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            info = _local_info(loc, os.stat(target))
        except Exception as exc:
            raise translate_error(exc, loc, "write") from None
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
        return ObjectInfo(
            location=info.location,
            size=info.size,
            etag=info.etag,
            checksum=f"sha256:{digest}",
            last_modified=info.last_modified,
            metadata=dict(metadata or {}),
            content_etag=False,
        )

    def delete(self, loc: Location) -> None:
        try:
            Path(loc.path).unlink(missing_ok=True)
        except Exception as exc:
            raise translate_error(exc, loc, "delete") from None


def _read_umask() -> int:
    """The process umask, read without changing it where the kernel allows (/proc/self/status has had
    a `Umask:` line since Linux 4.7); elsewhere by setting and restoring it, once, at import."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


# Read once: os.umask() can only be read by setting it, and a umask of 0 even for an instant is seen by
# every other thread creating files then (upload threads, the tool's stderr reader), which would make
# their files world-writable. Nothing in alignbatch changes the umask after start-up.
_UMASK = _read_umask()


def replace_into(tmp: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Rename a finished temp file onto `dest`, first giving it the mode a plain open() would have
    (0666 & ~umask): mkstemp makes 0600 files, and results must be readable like any other file."""
    os.chmod(tmp, 0o666 & ~_UMASK)
    os.replace(tmp, dest)


def _local_info(loc: Location, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        location=loc,
        size=st.st_size,
        etag=f"{st.st_mtime_ns}-{st.st_size}",
        last_modified=datetime.fromtimestamp(st.st_mtime, tz=UTC),
        content_etag=False,
    )


def store_for(loc: Location, **kw: Any) -> ObjectStore:
    """The store that holds `loc`; keyword arguments (client, sse_kms_key_id) go to S3ObjectStore."""
    if loc.is_s3:
        return S3ObjectStore(**kw)
    return LocalObjectStore()


class Stores:
    """The store of each kind of location, chosen once with `store_for` on first use and shared by
    every later location of that kind (so a local-only run never builds an S3 client)."""

    def __init__(self, **kw: Any) -> None:
        self._kw = kw
        self._by_scheme: dict[str, ObjectStore] = {}

    def for_location(self, loc: Location) -> ObjectStore:
        store = self._by_scheme.get(loc.scheme)
        if store is None:
            store = self._by_scheme[loc.scheme] = store_for(loc, **self._kw)
        return store
