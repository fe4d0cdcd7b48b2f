"""What each finished transfer reports (one `transfer` log line), and how a failed one is reported:
the exception mapped through core.awserrors into a one-line WorkerError naming the object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.awserrors import AwsFailure, classify
from core.errors import TransientIOError, WorkerError
from core.locations import Location
from core.objectstore import ObjectInfo
from core.s3client import translate_error


@dataclass(frozen=True)
class TransferResult:
    direction: str  # download | stream | upload | copy
    source: str
    destination: str
    bytes: int
    seconds: float
    verified: str  # how integrity was established
    info: ObjectInfo | None = None

    @property
    def mb_per_s(self) -> float:
        return round(self.bytes / 1e6 / self.seconds, 1) if self.seconds > 0 else 0.0

    def log_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "direction": self.direction,
            "source": self.source,
            "destination": self.destination,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "mb_per_s": self.mb_per_s,
            "verified": self.verified,
        }
        # Which content was read, when the store versions it: the run's identity includes it.
        if self.direction in ("download", "stream") and self.info is not None:
            if self.info.version_id and self.info.version_id != "null":
                fields["version_id"] = self.info.version_id
            if self.info.location.expected_etag is not None:
                fields["etag"] = self.info.etag
        return fields


def unwrap(exc: BaseException) -> BaseException:
    # s3transfer wraps some failures (RetriesExceededError carries the last socket error).
    last = getattr(exc, "last_exception", None)
    return last if isinstance(last, BaseException) else exc


def download_error(exc: BaseException, loc: Location) -> WorkerError:
    exc = unwrap(exc)
    if classify(exc).failure is AwsFailure.PRECONDITION and loc.expected_etag is None:
        # Unpinned: the next attempt reads the new content whole. An ETag-pinned input is gone for good
        # (translate_error says so, 66).
        return TransientIOError(f"download {loc}: the object changed while it was being read; retry")
    if type(exc).__name__ == "CancelledError":
        return TransientIOError(f"download {loc}: cancelled")
    return translate_error(exc, loc, "download")
