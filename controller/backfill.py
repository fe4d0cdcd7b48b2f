"""`submit s3://bucket/prefix/`: backfill objects that are already in the inbox.

Each object is turned into the same ObjectEvent a notification would carry and goes through
`Controller.handle_event` (filters, dedup by identity, index detection, planning, ledger). Index files are
recorded before alignments so an existing .bai counts. Only the ledger is written here: the running
controller's submit loop submits the planned jobs (two processes submitting the same job could race).
"""

from __future__ import annotations

import sys
from collections import Counter

from controller.config import ControllerConfig
from controller.inbox import inbox_for
from controller.listing import listed_events
from core.locations import LocationError, parse_location
from core.objectstore import store_for


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
    outcomes: Counter[str] = Counter()
    from rich.console import Console
    from rich.progress import track

    # A bar only for a person at a terminal; piped output stays the one summary line below.
    console = Console(stderr=True)
    shown = progress and console.is_terminal
    for ev in track(events, description="backfill", console=console, disable=not shown, transient=True):
        outcomes[ctl.handle_event(ev)] += 1
    summary = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "nothing found"
    print(f"backfill {prefix}: {len(events)} objects: {summary}")
    if outcomes.get("accepted"):
        print("the running controller submits the new runs (alignbatch-controller status shows progress)")
    return 0
