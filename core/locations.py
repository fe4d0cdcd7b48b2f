"""Locations: an S3 object (`s3://bucket/key`) or a local file (`file://path` or a plain path).

Parsing is pure and strict: anything that cannot name exactly one object or file is refused with a
one-line `LocationError`, so a typo never turns into a guess. Keys are taken verbatim (no percent
decoding), the way `aws s3 cp` takes them; spaces and unicode are fine.
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


class LocationError(ValueError):
    """A malformed or unsupported location; the message is one line naming the text and the fix."""


@dataclass(frozen=True)
class Location:
    scheme: Scheme
    bucket: str = ""
    key: str = ""
    path: str = ""

    # -- constructors -------------------------------------------------------------------------------
    @classmethod
    def s3(cls, bucket: str, key: str) -> Location:
        _check_bucket(bucket, f"s3://{bucket}/{key}")
        _check_key(key, f"s3://{bucket}/{key}", allow_empty=True)
        return cls("s3", bucket=bucket, key=key)

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

    def __str__(self) -> str:
        if self.is_s3:
            return f"s3://{self.bucket}/{self.key}"
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
    bucket, _, key = rest.partition("/")
    _check_bucket(bucket, text)
    if not allow_prefix:
        if not key:
            raise LocationError(f"{text!r} names a bucket, not an object: give s3://{bucket or 'BUCKET'}/KEY")
        if key.endswith("/"):
            raise LocationError(f"{text!r} ends with '/', which names a prefix, not an object")
    _check_key(key, text, allow_empty=allow_prefix)
    return Location("s3", bucket=bucket, key=key)


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
