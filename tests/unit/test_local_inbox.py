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
