"""`submit s3://bucket/prefix/`: backfill objects that are already in the inbox.

Each object is turned into the same ObjectEvent a notification would carry and goes through
`Controller.handle_event` (filters, dedup by identity, index detection, planning, ledger). Index files are
recorded before alignments so an existing .bai counts. Only the ledger is written here: the running
controller's submit loop submits the planned jobs (two processes submitting the same job could race).
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC, datetime

from controller.config import ControllerConfig
from controller.events import ObjectEvent, ObjectKind, classify_key
from controller.inbox import Inbox, inbox_for
from core.locations import Location, LocationError, parse_location
from core.objectstore import ObjectInfo, ObjectStore, store_for


class Progress:
    """A one-line progress bar on stderr (only when it is a terminal, or when forced)."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, 0, enabled
        self.width = 30

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.enabled and (self.done == self.total or self.done % max(1, self.total // 200) == 0):
            filled = int(self.width * self.done / max(1, self.total))
            bar = "#" * filled + "-" * (self.width - filled)
            sys.stderr.write(f"\r[{bar}] {self.done}/{self.total}")
            if self.done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


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


def backfill(cfg: ControllerConfig, prefix: str, *, progress: bool = True) -> int:
    from controller.factory import build_controller

    try:
        loc = parse_location(prefix, allow_prefix=True)
    except LocationError as exc:
        print(f"alignbatch-controller: {exc}", file=sys.stderr)
        return 2
    inbox = inbox_for(cfg)
    if inbox.backfill_object(loc) is None:
        where = "needs --config (AWS mode)" if loc.is_s3 else f"must be under the inbox {inbox.root}"
        print(f"alignbatch-controller: {'s3://' if loc.is_s3 else 'local'} backfill {where}", file=sys.stderr)
        return 2
    events = listed_events(inbox, store_for(loc), loc)
    ctl = build_controller(cfg, with_source=False)
    bar = Progress(len(events), enabled=progress and sys.stderr.isatty())
    outcomes: Counter[str] = Counter()
    for ev in events:
        outcomes[ctl.handle_event(ev)] += 1
        bar.step()
    summary = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "nothing found"
    print(f"backfill {prefix}: {len(events)} objects: {summary}")
    if outcomes.get("accepted"):
        print("the running controller submits the new runs (alignbatch-controller status shows progress)")
    return 0
