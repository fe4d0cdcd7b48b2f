"""The controller reads an index next to a fan-out candidate to cap its shard array (#17).

Real files through the local store; the index is user data, so what does not parse, is too large or is a
link is not planned from (the size alone then decides) and says so in one log line.
"""

from __future__ import annotations

import gzip
import shutil
import struct
import time
from pathlib import Path

import pytest

from controller import index_layout
from controller.inbox import inbox_at
from controller.index_layout import read_layout
from controller.planner import index_candidates
from core.objectstore import LocalObjectStore

CANDIDATES = index_candidates("x.bam")


@pytest.fixture
def inbox_dir(tmp_path: Path, data_dir: Path) -> Path:
    d = tmp_path / "inbox"
    d.mkdir()
    shutil.copy(data_dir / "h_source.bam.bai", d / "x.bam.bai")
    return d


def test_the_first_candidate_present_is_parsed(inbox_dir: Path) -> None:
    layout = read_layout(LocalObjectStore(), inbox_at(str(inbox_dir)), str(inbox_dir), CANDIDATES)
    assert layout is not None and layout.key == "x.bam.bai"
    assert len(layout.index.spans) >= 1 and layout.useful_shards(64) >= 1


def test_no_index_is_none(tmp_path: Path) -> None:
    assert read_layout(LocalObjectStore(), inbox_at(str(tmp_path)), str(tmp_path), CANDIDATES) is None


@pytest.mark.parametrize(
    "damage", ["negative count", "truncated", "not an index", "2**31 contigs in 16 bytes", "csi bomb"]
)
def test_an_index_that_does_not_parse_is_logged_and_not_used(inbox_dir: Path, capsys, damage: str) -> None:
    index = inbox_dir / "x.bam.bai"
    good = index.read_bytes()
    bad = {
        "negative count": b"BAI\x01" + b"\xff" * 40,
        "truncated": good[: len(good) // 2],
        "not an index": b"hello",
        # each contig's negative window count used to step the offset back: 2**31 loops, no error
        "2**31 contigs in 16 bytes": b"BAI\x01" + struct.pack("<i", 2**31 - 1) + struct.pack("<ii", 0, -1),
        # ~65 KB that inflates past the 64 MiB an index may have
        "csi bomb": gzip.compress(b"CSI\x01" + bytes(65 << 20), compresslevel=1),
    }[damage]
    index.write_bytes(bad)
    started = time.monotonic()
    assert read_layout(LocalObjectStore(), inbox_at(str(inbox_dir)), str(inbox_dir), CANDIDATES) is None
    out = capsys.readouterr()
    line = next(ln for ln in (out.out + out.err).splitlines() if "event.index_not_read" in ln)
    assert "x.bam.bai" in line and "does not parse" in line
    assert time.monotonic() - started < 5  # refused from its counts, not after walking them


def test_an_oversized_index_is_not_read(inbox_dir: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(index_layout, "MAX_INDEX_BYTES", 16)
    assert read_layout(LocalObjectStore(), inbox_at(str(inbox_dir)), str(inbox_dir), CANDIDATES) is None
    out = capsys.readouterr()
    assert "larger than" in out.out + out.err


def test_a_link_is_never_read(inbox_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.bai"
    (inbox_dir / "x.bam.bai").rename(outside)
    (inbox_dir / "x.bam.bai").symlink_to(outside)
    assert read_layout(LocalObjectStore(), inbox_at(str(inbox_dir)), str(inbox_dir), CANDIDATES) is None


class _Store:
    """Just the two calls read_layout makes, answering per key (the branching is what is tested here;
    the real stores are exercised above and in tests/e2e/test_s11_fanout.py)."""

    def __init__(self, answers: dict[str, object], data: bytes) -> None:
        self.answers, self.data, self.asked = answers, data, []

    def head(self, loc):  # type: ignore[no-untyped-def]
        from core.objectstore import ObjectInfo

        key = loc.path.rsplit("/", 1)[-1]
        self.asked.append(key)
        answer = self.answers.get(key)
        if isinstance(answer, Exception):
            raise answer
        return None if answer is None else ObjectInfo(loc, len(self.data), "etag")

    def read_range(self, loc, start: int, length: int) -> bytes:  # type: ignore[no-untyped-def]
        return self.data[start : start + length]


def test_a_refused_or_vanished_candidate_is_passed_over(tmp_path: Path, data_dir: Path) -> None:
    from core.errors import AccessDenied, ObjectMissing

    good = (data_dir / "h_source.bam.bai").read_bytes()
    store = _Store(
        {"x.bam.bai": AccessDenied("403"), "x.bai": ObjectMissing("gone"), "x.bam.csi": True}, good
    )
    layout = read_layout(store, inbox_at(str(tmp_path)), str(tmp_path), CANDIDATES)  # type: ignore[arg-type]
    assert layout is not None and layout.key == "x.bam.csi"
    assert store.asked == ["x.bam.bai", "x.bai", "x.bam.csi"]


def test_an_unreadable_index_never_holds_its_bam_back_but_a_transient_error_is_raised(
    tmp_path: Path, capsys
) -> None:
    from core.errors import BadInput, TransientIOError

    archived = _Store({"x.bam.bai": BadInput("InvalidObjectState: the object is archived")}, b"")
    assert read_layout(archived, inbox_at(str(tmp_path)), str(tmp_path), CANDIDATES) is None  # type: ignore[arg-type]
    out = capsys.readouterr()
    assert "archived" in out.out + out.err and "event.index_not_read" in out.out + out.err
    throttled = _Store({"x.bam.bai": TransientIOError("SlowDown")}, b"")
    with pytest.raises(TransientIOError):  # the message is received again later
        read_layout(throttled, inbox_at(str(tmp_path)), str(tmp_path), CANDIDATES)  # type: ignore[arg-type]
