"""Input planning through the stores, without servers: read in place or fetch, stream or not."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from core.errors import BadInput, ObjectMissing
from core.locations import parse_location
from core.objectstore import Stores
from tests.support.stores import FakeS3Client
from worker.inputs import InputPlanner
from worker.tools import parse_command


class _Log:
    def __init__(self) -> None:
        self.events: list[str] = []

    def info(self, event: str, **fields: Any) -> None:
        self.events.append(event)


def _planner(mode: str = "auto") -> tuple[InputPlanner, _Log]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    log = _Log()
    stores = Stores(client=FakeS3Client({("bkt", "x.bam"): b"BAM\x01"}))
    return InputPlanner(stores, log, mode=mode), log  # type: ignore[arg-type]


def test_a_local_input_is_read_in_place(tmp_path: Path) -> None:
    path = tmp_path / "x.bam"
    path.write_bytes(b"BAM\x01")
    planner, _ = _planner()
    inp = planner.resolve(parse_location(str(path)), str(path), "input -i")
    assert (inp.host_path, inp.local_path, inp.needs_fetch) == (str(path), str(path), False)
    with pytest.raises(ObjectMissing) as missing:
        planner.resolve(parse_location(str(tmp_path / "nope")), "nope", "input -i")
    assert "check the bucket" not in str(missing.value)
    with pytest.raises(BadInput, match="is a directory"):
        planner.resolve(parse_location(str(tmp_path)), str(tmp_path), "input -i")


def test_an_s3_input_must_be_fetched() -> None:
    planner, _ = _planner()
    inp = planner.resolve(parse_location("s3://bkt/x.bam"), "s3://bkt/x.bam", "input -i")
    assert (inp.host_path, inp.local_path, inp.needs_fetch, inp.info.size) == (None, None, True, 4)
    with pytest.raises(ObjectMissing, match="check the bucket and key"):
        planner.resolve(parse_location("s3://bkt/y.bam"), "s3://bkt/y.bam", "input -i")


def test_only_a_fetched_main_input_streams(tmp_path: Path) -> None:
    path = tmp_path / "x.bam"
    path.write_bytes(b"BAM\x01")
    for uri, mode, streams in (("s3://bkt/x.bam", "auto", True), ("s3://bkt/x.bam", "stage", False)):
        planner, _ = _planner(mode)
        cmd = parse_command(("alignstats", "-i", uri, "-o", str(tmp_path / "o.json")))
        slot = planner.main_slot(cmd)
        assert slot is not None
        main = planner.resolve(slot.location, slot.text, "input -i")
        assert planner.decide_stream(cmd, slot, main) is streams
    planner, log = _planner("stream")
    cmd = parse_command(("alignstats", "-i", str(path), "-o", str(tmp_path / "o.json")))
    slot = planner.main_slot(cmd)
    assert slot is not None
    assert planner.decide_stream(cmd, slot, planner.resolve(slot.location, slot.text, "input -i")) is False
    assert log.events == ["stream_ignored"]


class _LeastPrivilegeStore:
    """S3 as a role with ListBucket only under a prefix sees it: a HEAD of a missing key is 403."""

    def __init__(self, keys: list[str], *, list_allowed: bool) -> None:
        self.keys = keys
        self.list_allowed = list_allowed
        self.heads: list[str] = []
        self.lists: list[str] = []

    def local_path(self, loc: Any) -> None:
        return None

    def head(self, loc: Any) -> Any:
        from core.errors import AccessDenied
        from core.objectstore import ObjectInfo

        self.heads.append(loc.key)
        if loc.key not in self.keys:
            raise AccessDenied(f"head {loc}: access denied (403)")
        return ObjectInfo(location=loc, size=1, etag="e")

    def list(self, prefix: Any) -> Any:
        from core.errors import AccessDenied
        from core.locations import Location
        from core.objectstore import ObjectInfo

        self.lists.append(prefix.key)
        if not self.list_allowed:
            raise AccessDenied(f"list {prefix}: access denied (403)")
        for key in sorted(self.keys):
            if key.startswith(prefix.key):
                yield ObjectInfo(location=Location.s3(prefix.bucket, key), size=1, etag="e")


def _least_privilege_planner(store: _LeastPrivilegeStore) -> InputPlanner:
    class _Stores:
        def for_location(self, loc: Any) -> Any:
            return store

    return InputPlanner(_Stores(), _Log())  # type: ignore[arg-type]


def test_a_companion_is_found_by_one_list_and_403s_on_candidates_mean_absent() -> None:
    from core.errors import AccessDenied

    keys = ["d/x.bam", "d/x.bai", "d/x1.bam"]
    for list_allowed, heads in ((True, ["d/x.bai"]), (False, ["d/x.bam.bai", "d/x.bam.csi", "d/x.bai"])):
        store = _LeastPrivilegeStore(keys, list_allowed=list_allowed)
        planner = _least_privilege_planner(store)
        main = planner.resolve(parse_location("s3://bkt/d/x.bam"), "s3://bkt/d/x.bam", "input -i")
        store.heads.clear()
        found = planner._find_companion(main)
        assert found is not None and found[0] == ".bai" and found[1].location.key == "d/x.bai"
        assert store.lists == ["d/x"] and store.heads == heads
    # so many keys share the stem that listing them all costs more than the HEADs
    many = _LeastPrivilegeStore(
        ["d/x.bam", "d/x.bai", *(f"d/x{n:05}.bam" for n in range(1200))], list_allowed=True
    )
    planner = _least_privilege_planner(many)
    main = planner.resolve(parse_location("s3://bkt/d/x.bam"), "s3://bkt/d/x.bam", "input -i")
    found = planner._find_companion(main)
    assert found is not None and found[1].location.key == "d/x.bai"
    # the main input's own 403 is a permission error, never "missing"
    with pytest.raises(AccessDenied):
        planner.resolve(parse_location("s3://bkt/d/nope.bam"), "s3://bkt/d/nope.bam", "input -i")
