"""Which row of a key the results table shows: the newest version, never the run that finished last."""

from __future__ import annotations

import json
from pathlib import Path

from controller.results_rows import RowIndex, is_newer
from core.locations import parse_location
from core.objectstore import store_for


def _row(version: str, *, seq: str = "", event_time: str = "", written_at: str = "") -> dict[str, str]:
    return {
        "inbox_key": "s1.bam",
        "input_version_id": version,
        "s3_sequencer": seq,
        "event_time": event_time,
        "written_at": written_at,
    }


def test_the_sequencer_decides_over_event_time_and_finish_order() -> None:
    # v2 was put in the same millisecond as v1 (equal eventTime) and its run finished first
    v1 = _row("v1", seq="0055AED6DCD90281E5", event_time="2026-12-01T10:00:00.123000+00:00", written_at="t9")
    v2 = _row("v2", seq="0055AED6DCD90281E6", event_time="2026-12-01T10:00:00.123000+00:00", written_at="t1")
    assert is_newer(v2, "rows/b.json", v1, "rows/a.json")
    assert not is_newer(v1, "rows/a.json", v2, "rows/b.json")


def test_sequencers_of_different_lengths_compare_left_padded() -> None:
    # S3: pad the shorter with leading zeros, then compare; "FF" < "0100" once padded
    short, long = _row("v1", seq="FF"), _row("v2", seq="0100")
    assert is_newer(long, "b", short, "a") and not is_newer(short, "a", long, "b")
    assert is_newer(_row("v2", seq="100"), "b", _row("v1", seq="0FF"), "a")


def test_without_sequencers_event_time_then_written_at_decide() -> None:
    old = _row("v1", event_time="2026-12-01T10:00:00+00:00", written_at="2026-12-01T11:00:00")
    new = _row("v2", event_time="2026-12-01T10:00:05+00:00", written_at="2026-12-01T10:30:00")
    assert is_newer(new, "b", old, "a")
    retry = _row("v2", event_time=new["event_time"], written_at="2026-12-01T12:00:00")
    assert is_newer(retry, "c", new, "b")
    # one row without a sequencer (a listed backfill) against one with: event time decides
    assert is_newer(_row("v3", event_time="2026-12-01T10:00:09+00:00"), "d", _row("v2", seq="AA"), "b")


def test_the_table_shows_the_newest_version_whatever_order_rows_arrive(tmp_path: Path) -> None:
    rows = tmp_path / "results" / "rows"
    rows.mkdir(parents=True)
    same_time = "2026-12-01T10:00:00.001000+00:00"
    (rows / "run-v2.json").write_text(json.dumps(_row("v2", seq="0A", event_time=same_time, written_at="1")))
    (rows / "run-v1.json").write_text(json.dumps(_row("v1", seq="09", event_time=same_time, written_at="2")))
    root = str(tmp_path / "results")
    index = RowIndex(store_for(parse_location(root, allow_prefix=True)), root)
    table = index.refresh()
    assert [r["input_version_id"] for r in table] == ["v2"]
    assert sorted(r["input_version_id"] for r in index.all_rows()) == ["v1", "v2"]
