"""The local profile's event source: a directory scan that reports each settled file version once."""

from __future__ import annotations

import os
import time
from pathlib import Path

from controller.sources.local_inbox import LocalInboxSource


def _settled(path: Path, data: bytes, age: float = 60.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    old = time.time() - age
    os.utime(path, (old, old))


def test_each_file_version_is_reported_once_and_forgotten_when_gone(tmp_path: Path) -> None:
    src = LocalInboxSource(tmp_path, settle_seconds=20, poll_seconds=0)
    _settled(tmp_path / "a.bam", b"a")
    _settled(tmp_path / "sub" / "b.bam", b"b")
    (tmp_path / ".hidden.bam").write_bytes(b"h")
    (tmp_path / "fresh.bam").write_bytes(b"f")  # still being written: not settled

    first = src.receive()
    assert sorted(m.receipt[0] for m in first) == ["a.bam", "sub/b.bam"]
    assert src.unsettled == 1
    assert src.receive() == []  # in flight: not reported twice

    src.release([m for m in first if m.receipt[0] == "a.bam"])  # processing failed: report again
    src.ack([m for m in first if m.receipt[0] != "a.bam"])
    again = src.receive()
    assert [m.receipt[0] for m in again] == ["a.bam"]
    src.ack(again)

    _settled(tmp_path / "a.bam", b"a2", age=40)  # rewritten: a new version, a new event
    assert [m.receipt[0] for m in src.receive()] == ["a.bam"]

    (tmp_path / "sub" / "b.bam").unlink()
    src.receive()
    assert all(key != "sub/b.bam" for key, _etag in src._seen)


def test_a_burst_is_walked_once_and_handed_out_in_batches(tmp_path: Path) -> None:
    src = LocalInboxSource(tmp_path, settle_seconds=20, poll_seconds=0)
    for n in range(25):
        _settled(tmp_path / f"s{n:02d}.bam", b"x")
    batches = [src.receive(10) for _ in range(3)]
    assert [len(b) for b in batches] == [10, 10, 5]
    assert len({m.receipt for b in batches for m in b}) == 25
    assert src.walks == 1  # walking per batch made a burst of N files cost N*N/10 stats
    assert src.depth()[("inbox", "visible")] == 0


def test_a_file_removed_or_rewritten_after_the_walk_is_not_reported_in_its_old_version(
    tmp_path: Path,
) -> None:
    src = LocalInboxSource(tmp_path, settle_seconds=20, poll_seconds=0)
    for name in ("a.bam", "b.bam", "c.bam"):
        _settled(tmp_path / name, b"x")
    assert [m.receipt[0] for m in src.receive(1)] == ["a.bam"]  # the walk queued b and c
    assert src.depth()[("inbox", "visible")] == 2
    (tmp_path / "b.bam").unlink()
    _settled(tmp_path / "c.bam", b"c2", age=40)  # a new version since the walk
    again = src.receive(10)  # b is gone, c's queued version is stale: a new walk finds c's new version
    assert [m.receipt[0] for m in again] == ["c.bam"]
    assert again[0].receipt[1].endswith("-2")  # size 2: the new bytes
    assert src.walks == 2


def test_links_and_special_files_are_skipped_with_a_logged_reason(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    _settled(outside / "other.bam", b"secret")
    _settled(outside / "dir" / "deep.bam", b"secret")
    _settled(inbox / "real.bam", b"r")
    (inbox / "outside.bam").symlink_to(outside / "other.bam")
    (inbox / "x.bam").symlink_to("/etc/passwd")
    (inbox / "dangling.bam").symlink_to(tmp_path / "nowhere.bam")
    (inbox / "inside.bam").symlink_to(inbox / "real.bam")  # even one that stays inside: a second name
    (inbox / "linked").symlink_to(outside / "dir")
    os.mkfifo(inbox / "fifo.bam")  # a reader would block on it forever
    src = LocalInboxSource(inbox, settle_seconds=0, poll_seconds=0)
    with capture_logs() as logs:
        got = src.receive()
        assert src.receive() == []  # walked again: logged once, not once a walk
    assert [m.receipt[0] for m in got] == ["real.bam"]
    skipped = {e["file"]: e["reason"] for e in logs if e["event"] == "inbox.skipped"}
    assert sorted(skipped) == ["dangling.bam", "fifo.bam", "inside.bam", "linked", "outside.bam", "x.bam"]
    assert len([e for e in logs if e["event"] == "inbox.skipped"]) == 6
    assert "symbolic link" in skipped["x.bam"] and "regular file" in skipped["fifo.bam"]


def test_a_file_replaced_by_a_link_after_the_walk_is_not_handed_out(tmp_path: Path) -> None:
    src = LocalInboxSource(tmp_path, settle_seconds=0, poll_seconds=0)
    for n in range(12):
        _settled(tmp_path / f"s{n:02d}.bam", b"x")
    assert len(src.receive(10)) == 10
    (tmp_path / "s11.bam").unlink()
    (tmp_path / "s11.bam").symlink_to("/etc/passwd")
    assert [m.receipt[0] for m in src.receive(10)] == ["s10.bam"]


def test_a_name_that_is_not_utf8_is_skipped_not_a_crash(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    _settled(tmp_path / "good.bam", b"g")
    _settled(Path(os.fsdecode(bytes(tmp_path) + b"/bad\xff.bam")), b"b")
    src = LocalInboxSource(tmp_path, settle_seconds=0, poll_seconds=0)
    with capture_logs() as logs:
        got = src.receive()  # today: UnicodeEncodeError rendering the notification, every walk
    assert [m.receipt[0] for m in got] == ["good.bam"]
    assert [e["reason"] for e in logs if e["event"] == "inbox.skipped"] == [
        "file name is not UTF-8; rename it"
    ]
