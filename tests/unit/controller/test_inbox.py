"""The Inbox strategies: S3 bucket+prefix and a local directory answer the same questions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from controller.config import ControllerConfig, StorageConfig, local_config
from controller.inbox import LocalInbox, S3Inbox, inbox_at, inbox_for
from core.errors import AccessDenied
from core.locations import Location, parse_location
from core.objectstore import LocalObjectStore, ObjectInfo


class _ListingStore:
    """An object store that lists and heads a fixed set of S3 keys, counting calls."""

    def __init__(self, keys: set[str], *, deny_list: bool = False, deny_head: bool = False) -> None:
        self.keys, self.deny_list, self.deny_head = keys, deny_list, deny_head
        self.lists: list[str] = []
        self.heads: list[str] = []

    def list(self, prefix: Location) -> Iterator[ObjectInfo]:
        self.lists.append(prefix.key)
        if self.deny_list:
            raise AccessDenied("no s3:ListBucket")
        for key in sorted(self.keys):
            if key.startswith(prefix.key):
                yield ObjectInfo(Location.s3(prefix.bucket, key), 1, "e")

    def head(self, loc: Location) -> ObjectInfo | None:
        self.heads.append(loc.key)
        if self.deny_head:
            raise AccessDenied("403")
        return ObjectInfo(loc, 1, "e") if loc.key in self.keys else None


def test_s3_inbox_key_rules() -> None:
    inbox = S3Inbox("inbox", "incoming/", "s3://refs")
    assert inbox.root == "s3://inbox/incoming" and inbox.reference_root == "s3://refs"
    assert inbox.owns("inbox", "incoming/a.bam") and not inbox.owns("inbox", "other/a.bam")
    assert not inbox.owns("elsewhere", "incoming/a.bam")
    assert inbox.inbox_key("incoming/d/a.bam") == "d/a.bam" and inbox.inbox_key("x.bam") == "x.bam"
    assert inbox.object_uri("inbox", "incoming/a b.bam") == "s3://inbox/incoming/a b.bam"
    assert inbox.validate_key("a/../b.bam") and inbox.validate_key("a//b.bam")
    assert inbox.validate_key("x" * 300 + ".bam") is None  # long names are fine on S3
    assert inbox_at("s3://inbox/incoming") == S3Inbox("inbox", "incoming")


def test_local_inbox_key_rules(tmp_path: Path) -> None:
    inbox = LocalInbox(str(tmp_path))
    assert inbox.owns("anything", "k.bam") and inbox.inbox_key("d/k.bam") == "d/k.bam"
    assert inbox.object_uri(str(tmp_path), "d/k.bam") == str(tmp_path / "d" / "k.bam")
    assert "local file name" in (inbox.validate_key("y" * 300 + ".bam") or "")
    assert inbox_at(str(tmp_path)) == inbox


def test_control_characters_are_refused_in_both_inboxes(tmp_path: Path) -> None:
    # S3 allows them in keys; a '\n' splits a log line or a table row, and NUL ends a C string.
    for inbox in (S3Inbox("inbox", "incoming/"), LocalInbox(str(tmp_path))):
        for char in ("\n", "\t", "\r", "\x00", "\x1b", "\x7f"):
            assert "control character" in (inbox.validate_key(f"incoming/a{char}b.bam") or ""), (inbox, char)
        assert inbox.validate_key("incoming/ü é+%{x}.bam") is None


def test_inbox_is_chosen_once_from_the_config(tmp_path: Path) -> None:
    assert isinstance(inbox_for(local_config(tmp_path)), LocalInbox)
    cfg = ControllerConfig(
        storage=StorageConfig(inbox_bucket="inbox", inbox_prefix="p/", reference_bucket="refs")
    )
    assert inbox_for(cfg) == S3Inbox("inbox", "p/", "s3://refs")


def test_s3_index_probe_lists_the_stem_then_heads() -> None:
    inbox = S3Inbox("inbox", "")
    candidates = ("s.bam.bai", "s.bai", "s.bam.csi", "s.csi")
    store = _ListingStore({"s.bam", "s.bam.bai"})
    assert inbox.index_present("inbox", candidates, store)  # type: ignore[arg-type]
    assert store.lists == ["s"] and store.heads == []  # one LIST, no HEAD
    assert not inbox.index_present("inbox", candidates, _ListingStore({"s.bam"}))  # type: ignore[arg-type]
    # Without list rights it cannot tell: making an index is always safe.
    denied = _ListingStore({"s.bam.bai"}, deny_list=True)
    assert not inbox.index_present("inbox", candidates, denied)  # type: ignore[arg-type]
    # A stem shared by more keys than a LIST is worth: HEAD the candidates instead.
    crowded = _ListingStore({f"s.{i:04}" for i in range(1200)} | {"s.bai"})
    assert inbox.index_present("inbox", candidates, crowded)  # type: ignore[arg-type]
    assert crowded.heads == ["s.bam.bai", "s.bai"]


def test_local_index_probe_stats_files(tmp_path: Path) -> None:
    inbox = LocalInbox(str(tmp_path))
    (tmp_path / "s.bam").write_bytes(b"x")
    assert not inbox.index_present(str(tmp_path), ("s.bam.bai", "s.bai"), LocalObjectStore())
    (tmp_path / "s.bai").write_bytes(b"x")
    assert inbox.index_present(str(tmp_path), ("s.bam.bai", "s.bai"), LocalObjectStore())


def test_backfill_objects(tmp_path: Path) -> None:
    local = LocalInbox(str(tmp_path / "inbox"))
    assert local.backfill_object(parse_location(str(tmp_path / "inbox" / "d" / "a.bam"))) == (
        str((tmp_path / "inbox").resolve()),
        "d/a.bam",
    )
    assert local.backfill_object(parse_location(str(tmp_path / "elsewhere"))) is None
    assert local.backfill_object(parse_location("s3://bkt/p/", allow_prefix=True)) is None
    assert S3Inbox("bkt").backfill_object(parse_location("s3://bkt/p/a.bam")) == ("bkt", "p/a.bam")
    assert S3Inbox("bkt").backfill_object(parse_location(str(tmp_path))) is None


def test_a_local_index_that_is_a_link_does_not_count(tmp_path: Path) -> None:
    (tmp_path / "outside.bai").write_bytes(b"x")
    (tmp_path / "a.bam.bai").symlink_to(tmp_path / "outside.bai")
    (tmp_path / "b.bam.bai").write_bytes(b"x")
    inbox = LocalInbox(str(tmp_path))
    assert not inbox.index_present(str(tmp_path), ["a.bam.bai", "a.bai"], LocalObjectStore())
    assert inbox.index_present(str(tmp_path), ["b.bam.bai"], LocalObjectStore())
