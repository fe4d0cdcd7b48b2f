"""Where objects arrive: an S3 bucket and prefix, or a local directory. Chosen once (controller.factory)
and asked everything that differs between the two: whether an event belongs to the inbox, an object's
inbox key and URI, whether a key is safe, whether an index already sits next to an object.

The key rules (owns, inbox_key, object_uri, validate_key) are pure, so the planner uses them too;
`index_present` is the one method that does I/O.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from controller.config import ControllerConfig
from core.errors import AccessDenied
from core.locations import Location, LocationError, parse_location
from core.logs import get_logger
from core.objectstore import LocalObjectStore, ObjectStore, S3ObjectStore

MAX_S3_KEY_BYTES = 1024
MAX_LOCAL_NAME_BYTES = 255
# A LIST of an index stem this long is no cheaper than HEADs of the candidates.
INDEX_LIST_LIMIT = 1000


class Inbox(Protocol):
    @property
    def kind(self) -> str:
        """ "s3" or "local": a log field, never branched on."""
        ...

    @property
    def root(self) -> str:
        """What inbox keys are relative to: s3://bucket/prefix or a directory."""
        ...

    @property
    def replayed_on_start(self) -> bool:
        """Every object in it is offered again as an event after each start (the local directory is
        walked whole), so a ledger rebuilt after a loss need not list it to find unplanned objects."""
        ...

    @property
    def reference_root(self) -> str:
        """Where a bare BED/FASTA key in the config lives ('' = used as given)."""
        ...

    def owns(self, bucket: str, key: str) -> bool:
        """The event is for an object in this inbox."""
        ...

    def inbox_key(self, key: str) -> str:
        """The key the results layout and [[pipeline.prefix]] use: without the inbox prefix."""
        ...

    def object_uri(
        self, bucket: str, key: str, *, version_id: str | None = None, etag: str | None = None
    ) -> str:
        """The object as the worker reads it (s3:// URI or path), pinned to `version_id` when the event
        named one (`?versionId=V`: the worker reads that version even after an overwrite or a delete),
        else to the event's `etag` (`?etag=E`: an overwrite since the event fails the job with 66 instead
        of reporting the new content under the old identity). Raises LocationError."""
        ...

    def validate_key(self, key: str) -> str | None:
        """Why a key cannot be processed safely, or None."""
        ...

    def index_present(self, bucket: str, candidates: Sequence[str], store: ObjectStore) -> bool:
        """An index exists at one of `candidates` (False when it cannot be told: making one is safe)."""
        ...

    def backfill_object(self, loc: Location) -> tuple[str, str] | None:
        """(bucket, key) of a listed object as an event would name it; None when it is not this kind."""
        ...

    def object_store(self) -> ObjectStore:
        """The store that reads this inbox and the results beside it."""
        ...


def _segment_problem(key: str) -> str | None:
    """Keys with '.'/'..'/empty segments would map outside (or ambiguously into) the results layout;
    over-long keys could not hold the report suffix; control characters (S3 allows '\\n', '\\t', even
    NUL) split log lines, table rows and shell-pasted commands, and no s3:// location accepts them."""
    bad = next((c for c in key if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        return f"key contains the control character {bad!r}; rename the object without control characters"
    segments = key.split("/")
    if any(seg in (".", "..") for seg in segments):
        return "key has a '.' or '..' path segment; rename the object without it"
    if any(seg == "" for seg in segments):
        return "key has an empty path segment ('//' or a leading/trailing '/'); rename the object"
    if len(("reports/" + key + ".alignstats.json").encode()) > MAX_S3_KEY_BYTES - 64:
        return "key is too long to hold the results layout (limit about 940 bytes); shorten it"
    return None


@dataclass(frozen=True)
class S3Inbox:
    bucket: str
    prefix: str = ""  # as configured: an event's key must start with it
    reference_root: str = ""
    kms_key_id: str = ""  # results are written with SSE-KMS under this key ('' = SSE-S3)
    kind: str = "s3"
    replayed_on_start: bool = False  # S3 notifies each object once; deleted messages are not redelivered

    @classmethod
    def from_root(cls, root: str, reference_root: str = "") -> S3Inbox:
        loc = parse_location(root, allow_prefix=True)
        return cls(loc.bucket, loc.key, reference_root)

    @property
    def root(self) -> str:
        prefix = self.prefix.strip("/")
        return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"

    def owns(self, bucket: str, key: str) -> bool:
        return bucket == self.bucket and key.startswith(self.prefix)

    def inbox_key(self, key: str) -> str:
        prefix = self.prefix.strip("/")
        if prefix:
            prefix += "/"
        return key[len(prefix) :] if prefix and key.startswith(prefix) else key

    def object_uri(
        self, bucket: str, key: str, *, version_id: str | None = None, etag: str | None = None
    ) -> str:
        pin_etag = None if version_id else (etag or "").strip('"') or None
        return str(Location.s3(bucket, key, version_id=version_id or None, expected_etag=pin_etag))

    def validate_key(self, key: str) -> str | None:
        return _segment_problem(key)

    def index_present(self, bucket: str, candidates: Sequence[str], store: ObjectStore) -> bool:
        try:
            found = self._listed(bucket, candidates, store)
        except AccessDenied as exc:
            # Without list rights under this prefix we cannot tell; making an index is always safe.
            get_logger(component="inbox").warning(
                "event.index_check_denied", key=candidates[0], error=str(exc)
            )
            return False
        if found is not None:
            return found
        for key in candidates:
            try:
                if store.head(Location.s3(bucket, key)) is not None:
                    return True
            except LocationError:
                continue
            except AccessDenied:
                return False  # as above: unknown, so let the index step make one
        return False

    def _listed(self, bucket: str, candidates: Sequence[str], store: ObjectStore) -> bool | None:
        """One LIST of the candidates' common stem (x.bai, x.bam.bai, x.csi, ...). A LIST, not HEADs: the
        controller's role may list only under the inbox prefix (an `s3:prefix` condition), and S3 answers
        a HEAD of a missing key with 403 to a caller without list rights. None when the stem is shared by
        so many keys that HEADs are cheaper."""
        stem = min(candidates, key=len).rsplit(".", 1)[0]
        wanted = set(candidates)
        for listed, info in enumerate(store.list(Location.s3(bucket, stem)), start=1):
            if info.location.key in wanted:
                return True
            if listed >= INDEX_LIST_LIMIT:
                return None
        return False

    def backfill_object(self, loc: Location) -> tuple[str, str] | None:
        return (loc.bucket, loc.key) if loc.is_s3 else None

    def object_store(self) -> ObjectStore:
        return S3ObjectStore(sse_kms_key_id=self.kms_key_id or None)


@dataclass(frozen=True)
class LocalInbox:
    directory: str  # absolute: event buckets are this directory, keys are relative to it
    reference_root: str = ""  # config paths are used as given
    kind: str = "local"
    replayed_on_start: bool = True  # the local source walks the whole directory after every start

    @property
    def root(self) -> str:
        return self.directory

    def owns(self, bucket: str, key: str) -> bool:
        return True  # the local source only ever walks this directory

    def inbox_key(self, key: str) -> str:
        return key

    def object_uri(
        self, bucket: str, key: str, *, version_id: str | None = None, etag: str | None = None
    ) -> str:
        return str(parse_location(bucket, allow_prefix=True).join(key))  # files have no versions

    def validate_key(self, key: str) -> str | None:
        problem = _segment_problem(key)
        if problem is None and any(len(seg.encode()) > MAX_LOCAL_NAME_BYTES - 20 for seg in key.split("/")):
            return "a path component is too long for a local file name (limit 235 bytes); shorten it"
        return problem

    def index_present(self, bucket: str, candidates: Sequence[str], store: ObjectStore) -> bool:
        for key in candidates:
            try:
                loc = Location.file(str(parse_location(bucket, allow_prefix=True).join(key)))
            except LocationError:
                continue
            if os.path.islink(loc.path):
                # The inbox source never reads a link (it may point out of the inbox): an index that is
                # one does not count, and the index step makes a real one under the results.
                get_logger(component="inbox").warning(
                    "inbox.skipped", file=key, reason="index is a symbolic link; the index step makes one"
                )
                continue
            try:
                if store.head(loc) is not None:
                    return True
            except AccessDenied:
                return False  # unknown, so let the index step make one
        return False

    def backfill_object(self, loc: Location) -> tuple[str, str] | None:
        if loc.is_s3:
            return None
        inbox = Path(self.directory).resolve()
        path = Path(loc.path).resolve()
        if not (path == inbox or inbox in path.parents):
            return None
        return str(inbox), path.relative_to(inbox).as_posix()

    def object_store(self) -> ObjectStore:
        return LocalObjectStore()


def inbox_at(root: str, reference_root: str = "") -> Inbox:
    """The inbox a root names (s3://... or a directory): for callers that only have the root string."""
    if root.startswith("s3://"):
        return S3Inbox.from_root(root, reference_root)
    return LocalInbox(root)


def inbox_for(cfg: ControllerConfig) -> Inbox:
    """The inbox a config describes: `run --local DIR` (DIR/inbox) or [storage] inbox_bucket/prefix."""
    if cfg.is_local:
        return LocalInbox(cfg.inbox_root)
    s = cfg.storage
    reference_root = f"s3://{s.reference_bucket}" if s.reference_bucket else ""
    return S3Inbox(s.inbox_bucket, s.inbox_prefix, reference_root, s.kms_key_id)
