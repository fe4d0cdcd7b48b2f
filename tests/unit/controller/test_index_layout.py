"""The controller reads an index next to a fan-out candidate to cap its shard array (#17).

Real files through the local store; the index is user data, so what does not parse, is too large or is a
link is not planned from (the size alone then decides) and says so in one log line.
"""

from __future__ import annotations

import shutil
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
    assert layout.placed_contigs >= 1 and layout.useful_shards(64) >= 1


def test_no_index_is_none(tmp_path: Path) -> None:
    assert read_layout(LocalObjectStore(), inbox_at(str(tmp_path)), str(tmp_path), CANDIDATES) is None


@pytest.mark.parametrize("damage", ["negative count", "truncated", "not an index"])
def test_an_index_that_does_not_parse_is_logged_and_not_used(inbox_dir: Path, capsys, damage: str) -> None:
    index = inbox_dir / "x.bam.bai"
    good = index.read_bytes()
    bad = {
        "negative count": b"BAI\x01" + b"\xff" * 40,
        "truncated": good[: len(good) // 2],
        "not an index": b"hello",
    }[damage]
    index.write_bytes(bad)
    assert read_layout(LocalObjectStore(), inbox_at(str(inbox_dir)), str(inbox_dir), CANDIDATES) is None
    out = capsys.readouterr()
    line = next(ln for ln in (out.out + out.err).splitlines() if "event.index_not_read" in ln)
    assert "x.bam.bai" in line and "does not parse" in line


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
