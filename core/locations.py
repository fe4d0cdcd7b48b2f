"""Locations: an S3 object (`s3://bucket/key`) or a local file (`file://path` or a plain path).

Parsing is pure and strict: anything that cannot name exactly one object or file is refused with a
one-line `LocationError`, so a typo never turns into a guess. Keys are taken verbatim (no percent
decoding), the way `aws s3 cp` takes them; spaces and unicode are fine.

An S3 location may pin the bytes it names, so a job reads exactly the object its event announced:
- `s3://bucket/key?versionId=V`: that version (every read sends `VersionId=V`);
- `s3://bucket/key?etag=E`: for unversioned buckets, the object only while its ETag is `E` (every read
  sends `If-Match: "E"`; give E without quotes).
Keys are user data and may contain `?`, so only ONE trailing query of exactly that shape is parsed: the
text after the last `?` must be `versionId=` + a version id (letters, digits, `.`, `_`, `-`, `+`, `=`) or
`etag=` + an ETag (letters, digits, `-`). Anything else after a `?` (`s3://b/what?.bam`, `s3://b/a?b=c`)
stays part of the key. A key that itself ends in such a query can only be named pinned: append the real
pin (`s3://b/k?etag=1?versionId=V` is key `k?etag=1`, version V). An empty pin value is refused (a
template that rendered nothing must not silently read the current version). Local paths are never parsed
for a query. `str()` of a pinned location gives the query back, so it round-trips.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

Scheme = Literal["s3", "file"]

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
# S3 bucket naming rules (general purpose buckets): 3-63 chars, lowercase letters, digits, dots, hyphens,
# starting and ending with a letter or digit.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_MAX_KEY_BYTES = 1024
# The one trailing query an S3 location may carry (see the module docstring); the value class is
# strict so that an ordinary key with a `?` is never taken for a pin.
_PIN_RE = re.compile(r"\?(?P<name>versionId|etag)=(?P<value>[^?]*)\Z")
_PIN_VALUE_RE = {"versionId": re.compile(r"[A-Za-z0-9._+=\-]+\Z"), "etag": re.compile(r"[A-Za-z0-9\-]+\Z")}


class LocationError(ValueError):
    """A malformed or unsupported location; the message is one line naming the text and the fix."""


@dataclass(frozen=True)
class Location:
    scheme: Scheme
    bucket: str = ""
    key: str = ""
    path: str = ""
    # A pin on the object's content (S3 only, at most one): reads use this version, or require this
    # ETag (If-Match). Derived locations (companions, parents, children) never inherit it.
    version_id: str | None = None
    expected_etag: str | None = None

    # -- constructors -------------------------------------------------------------------------------
    @classmethod
    def s3(
        cls, bucket: str, key: str, *, version_id: str | None = None, expected_etag: str | None = None
    ) -> Location:
        _check_bucket(bucket, f"s3://{bucket}/{key}")
        _check_key(key, f"s3://{bucket}/{key}", allow_empty=True)
        if version_id is not None and expected_etag is not None:
            raise LocationError(f"s3://{bucket}/{key}: pin a version or an ETag, not both")
        return cls("s3", bucket=bucket, key=key, version_id=version_id, expected_etag=expected_etag)

    @classmethod
    def file(cls, path: str) -> Location:
        if not path:
            raise LocationError("empty local path")
        return cls("file", path=path)

    # -- views --------------------------------------------------------------------------------------
    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    @property
    def name(self) -> str:
        """Last path component (`x.bam` for `s3://b/dir/x.bam`)."""
        return PurePosixPath(self.key if self.is_s3 else self.path).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> Location:
        if self.is_s3:
            head, _, _ = self.key.rstrip("/").rpartition("/")
            return Location("s3", bucket=self.bucket, key=f"{head}/" if head else "")
        return Location("file", path=posixpath.dirname(self.path.rstrip("/")) or ".")

    @property
    def pinned(self) -> bool:
        return self.version_id is not None or self.expected_etag is not None

    @property
    def pin(self) -> str:
        """The query that pins the content (`?versionId=V`, `?etag=E`), or ""."""
        if self.version_id is not None:
            return f"?versionId={self.version_id}"
        if self.expected_etag is not None:
            return f"?etag={self.expected_etag}"
        return ""

    def unpinned(self) -> Location:
        """The same object without its pin: the name a report shows (stable across versions)."""
        return Location(self.scheme, bucket=self.bucket, key=self.key, path=self.path)

    def __str__(self) -> str:
        if self.is_s3:
            return f"s3://{self.bucket}/{self.key}{self.pin}"
        return self.path

    # -- derivations --------------------------------------------------------------------------------
    def join(self, suffix: str) -> Location:
        """A child of this location seen as a directory/prefix: `s3://b/p`.join("x") → `s3://b/p/x`."""
        suffix = suffix.lstrip("/")
        if self.is_s3:
            if not self.key:
                key = suffix
            else:
                key = self.key if self.key.endswith("/") else self.key + "/"
                key += suffix
            return Location.s3(self.bucket, key)
        # A key such as `a/../../etc/x` is a legal S3 key but must never escape a local directory.
        if any(seg == ".." for seg in suffix.split("/")):
            raise LocationError(f"refusing to place {suffix!r} under {self.path}: it has a '..' path segment")
        return Location("file", path=posixpath.join(self.path, suffix))

    def add_suffix(self, suffix: str) -> Location:
        """Append to the name: `x.bam` + `.bai` → `x.bam.bai`."""
        if self.is_s3:
            return Location.s3(self.bucket, self.key + suffix)
        return Location("file", path=self.path + suffix)

    def with_suffix(self, suffix: str) -> Location:
        """Replace the last extension like pathlib: `x.bam` → `x.bai`."""
        if self.is_s3:
            return Location.s3(self.bucket, str(PurePosixPath(self.key).with_suffix(suffix)))
        return Location("file", path=str(PurePosixPath(self.path).with_suffix(suffix)))


def looks_remote(text: str) -> bool:
    """True for anything with a URI scheme other than file:// (s3://, gs://, https://...)."""
    m = _SCHEME_RE.match(text)
    return bool(m) and m.group(1).lower() != "file"


def is_s3_uri(text: str) -> bool:
    return text[:5].lower() == "s3://"


def parse_location(text: str, *, allow_prefix: bool = False) -> Location:
    """Parse `s3://bucket/key`, `file:///abs`, `file://rel` or a plain path.

    `allow_prefix=True` accepts `s3://bucket` and `s3://bucket/prefix/` (for listing).
    """
    if not text:
        raise LocationError("empty location: give s3://bucket/key or a local path")
    if "\x00" in text:
        raise LocationError(f"location {text!r} contains a NUL character")
    m = _SCHEME_RE.match(text)
    if not m:
        return Location("file", path=text)
    scheme = m.group(1).lower()
    rest = text[m.end() :]
    if scheme == "file":
        if rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
        if not rest:
            raise LocationError(f"{text!r} names no file: use file:///absolute/path or file://relative/path")
        return Location("file", path=rest)
    if scheme != "s3":
        raise LocationError(
            f"unsupported location {text!r}: only s3://bucket/key and local paths are supported"
        )
    rest, pin = _split_pin(rest, text)
    bucket, _, key = rest.partition("/")
    _check_bucket(bucket, text)
    if not allow_prefix:
        if not key:
            raise LocationError(f"{text!r} names a bucket, not an object: give s3://{bucket or 'BUCKET'}/KEY")
        if key.endswith("/"):
            raise LocationError(f"{text!r} ends with '/', which names a prefix, not an object")
    _check_key(key, text, allow_empty=allow_prefix)
    if pin and not key:
        raise LocationError(f"{text!r}: a prefix cannot be pinned to a version or ETag")
    return Location("s3", bucket=bucket, key=key, **pin)


def _split_pin(rest: str, text: str) -> tuple[str, dict[str, str]]:
    """`bucket/key?versionId=V` -> (`bucket/key`, {"version_id": V}); anything else is all key."""
    m = _PIN_RE.search(rest)
    if m is None:
        return rest, {}
    name, value = m.group("name"), m.group("value")
    if not value:
        raise LocationError(f"{text!r}: empty {name}; give {name}=VALUE or leave the query out")
    if not _PIN_VALUE_RE[name].match(value):
        return rest, {}  # not a pin after all: a key that happens to contain "?versionId=" text
    field = "version_id" if name == "versionId" else "expected_etag"
    return rest[: m.start()], {field: value}


def _check_bucket(bucket: str, text: str) -> None:
    if not bucket:
        raise LocationError(f"{text!r} has no bucket: give s3://BUCKET/KEY")
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise LocationError(
            f"{text!r}: {bucket!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, '.', '-')"
        )


def _check_key(key: str, text: str, *, allow_empty: bool) -> None:
    if not key and not allow_empty:
        raise LocationError(f"{text!r} has no object key")
    if len(key.encode("utf-8")) > _MAX_KEY_BYTES:
        raise LocationError(f"{text!r}: object key is longer than {_MAX_KEY_BYTES} bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise LocationError(f"{text!r}: object key contains control characters, which are not supported")
