"""The objects already in an inbox as the events a notification would carry (backfill and recovery).

Index files come first: an index that already sits next to a BAM must be recorded before the BAM is
planned, so the BAM's run does not make one again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from controller.events import ObjectEvent, ObjectKind, classify_key
from controller.inbox import Inbox
from core.locations import Location
from core.objectstore import ObjectInfo, ObjectStore


def _event(bucket: str, key: str, info: ObjectInfo) -> ObjectEvent:
    return ObjectEvent(
        bucket=bucket,
        key=key,
        size=info.size,
        etag=info.etag,
        version_id=info.version_id,
        event_name="ObjectCreated:Backfill",
        event_time=info.last_modified or datetime.now(UTC),
    )


def listed_events(inbox: Inbox, store: ObjectStore, loc: Location) -> list[ObjectEvent]:
    """The inbox objects under `loc` as events, indexes first (an index that already sits next to a BAM
    must be known before the BAM is planned)."""
    events: list[ObjectEvent] = []
    for info in store.list(loc):
        found = inbox.backfill_object(info.location)
        if found is not None:  # e.g. a symlink out of the inbox: not an inbox object
            events.append(_event(*found, info))
    events.sort(key=lambda e: (classify_key(e.key) is not ObjectKind.INDEX, e.key))
    return events
