"""What an object's BAM index says about splitting it, read when a run is planned (#17).

The planner sizes a shard array from the object's size (`fanout_decision`). When the index already sits
next to the object it is read here, and the array is capped at the groups that would read anything
(`shardplan.useful_shards`): a 100 GB BAM of a genome with three chromosomes becomes three children, not
twenty of which seventeen start a container only to find their group empty, and a BAM whose records all
sit on one contig goes as one job. The children plan with the capped count from the same index, so
their groups are the ones counted here.

An index is user data: one larger than MAX_INDEX_BYTES (also once inflated), one that does not parse
or cannot be read (archived) is logged and the plan falls back to the size alone (the children then
say what is wrong with it). A symbolic link is never read, as the local inbox never counts one as an
index.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from controller.inbox import Inbox
from core.errors import AccessDenied, ObjectMissing, TransientIOError, WorkerError
from core.locations import LocationError, parse_location
from core.logs import get_logger
from core.objectstore import ObjectStore
from worker.engine.bamindex import BadIndexError, BamIndex, parse_index
from worker.engine.shardplan import useful_shards

# A .bai of a 30x human genome is ~9 MB; an index far past that is not one worth planning from.
MAX_INDEX_BYTES = 64 << 20


@dataclass(frozen=True)
class IndexLayout:
    """The index the plan was made from, parsed (pure data from here on)."""

    key: str  # the index object's key, for log lines and reasons
    index: BamIndex

    def useful_shards(self, n: int) -> int:
        return useful_shards(self.index, n)


def read_layout(
    store: ObjectStore, inbox: Inbox, bucket: str, candidates: Sequence[str]
) -> IndexLayout | None:
    """The first of `candidates` (planner.index_candidates: x.bam.bai, x.bai, x.bam.csi, x.csi) that
    can be read, parsed; None when none can be used. Only a transient store error is raised (the
    message is then received again); a candidate that is missing or refused (S3 answers 403 for a
    missing key to a role without list rights) is passed over, and anything else about the index is
    logged and the plan goes by size: an index must never keep its BAM from being planned."""
    log = get_logger(component="intake")

    def not_read(key: str, reason: str) -> None:
        log.warning(
            "event.index_not_read", index=key, bucket=bucket, reason=f"{reason}; the shard count goes by size"
        )

    for key in candidates:
        try:
            loc = parse_location(inbox.object_uri(bucket, key))
        except LocationError:
            continue
        if loc.scheme == "file" and os.path.islink(loc.path):
            continue
        try:
            info = store.head(loc)
            if info is None:
                continue
            if info.size > MAX_INDEX_BYTES:
                not_read(key, f"{info.size} bytes, larger than {MAX_INDEX_BYTES >> 20} MiB")
                return None
            data = store.read_range(loc, 0, MAX_INDEX_BYTES + 1)
        except (AccessDenied, ObjectMissing):
            continue
        except TransientIOError:
            raise
        except WorkerError as exc:  # e.g. an archived (Glacier) index: it will not become readable
            not_read(key, str(exc))
            return None
        if len(data) > MAX_INDEX_BYTES:  # it grew between the HEAD and the read
            not_read(key, f"larger than {MAX_INDEX_BYTES >> 20} MiB")
            return None
        try:
            return IndexLayout(key, parse_index(data, key, max_inflated=MAX_INDEX_BYTES))
        except (BadIndexError, struct.error, IndexError, ValueError) as exc:
            not_read(key, f"does not parse ({exc})")
            return None
    return None
