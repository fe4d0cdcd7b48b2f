"""What an object's BAM index says about splitting it, read when a run is planned (#17).

The planner sizes a shard array from the object's size (`fanout_decision`). When the index already sits
next to the object it is read here, and the array is capped at the groups that would read anything
(`shardplan.useful_shards`): a 100 GB BAM of a genome with three chromosomes becomes three children, not
twenty of which seventeen start a container only to find their group empty, and a BAM whose records all
sit on one contig goes as one job. The children plan with the capped count from the same index, so
their groups are the ones counted here.

An index is user data: one larger than MAX_INDEX_BYTES, or one that does not parse, is logged and the
plan falls back to the size alone (the children then say what is wrong with it). A symbolic link is
never read, as the local inbox never counts one as an index.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from controller.inbox import Inbox
from core.errors import AccessDenied
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

    @property
    def placed_contigs(self) -> int:
        return sum(1 for s in self.index.spans if s is not None and s.records > 0)


def read_layout(
    store: ObjectStore, inbox: Inbox, bucket: str, candidates: Sequence[str]
) -> IndexLayout | None:
    """The first of `candidates` (in the order HTSlib and the worker pick them) that exists, parsed;
    None when none can be used."""
    log = get_logger(component="intake")
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
                log.warning(
                    "event.index_not_read", index=key, bucket=bucket, size=info.size,
                    reason=f"larger than {MAX_INDEX_BYTES >> 20} MiB; the shard count goes by size",
                )  # fmt: skip
                return None
            data = store.read_range(loc, 0, MAX_INDEX_BYTES + 1)
        except AccessDenied as exc:
            log.warning("event.index_not_read", index=key, bucket=bucket, reason=str(exc))
            return None
        try:
            return IndexLayout(key, parse_index(data[:MAX_INDEX_BYTES], key))
        except (BadIndexError, struct.error, IndexError, ValueError) as exc:
            log.warning(
                "event.index_not_read", index=key, bucket=bucket,
                reason=f"does not parse ({exc}); the shard count goes by size",
            )  # fmt: skip
            return None
    return None
