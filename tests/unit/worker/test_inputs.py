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
