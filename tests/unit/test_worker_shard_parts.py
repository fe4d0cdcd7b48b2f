"""The part naming contract, --part-out validation, and the fan-out forms read from a tool command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import UsageError
from core.locations import parse_location
from core.objectstore import ObjectInfo
from worker.argv import _seen_from
from worker.fanout import (
    MergeRequest,
    ShardRequest,
    annotate_part,
    fanout_request,
    merge_report_input,
    with_part_output,
)
from worker.inputs import Input
from worker.parts import (
    parse_part_name,
    parse_part_prefix,
    part_location,
    part_name,
    shard_numbers,
)
from worker.shard_ranges import CannotShard
from worker.tools import Kind, Role, parse_command

ENV = {"AWS_BATCH_JOB_ARRAY_INDEX": "2"}


def test_part_names_round_trip() -> None:
    assert part_name(0, 3) == "part-0-of-3.json"
    assert parse_part_name("part-11-of-64.json") == (11, 64)
    assert parse_part_name("part-1-of-3.json.tmp") is None and parse_part_name("x.json") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://res/parts/x.bam/0123abcd/", "s3://res/parts/x.bam/0123abcd/part-2-of-4.json"),
        ("s3://res/", "s3://res/part-2-of-4.json"),
        ("/data/parts/", "/data/parts/part-2-of-4.json"),
        ("file:///data/parts/", "/data/parts/part-2-of-4.json"),
        ("rel dir/", "rel dir/part-2-of-4.json"),
    ],
)
def test_a_prefix_ending_in_a_slash_names_the_part(text: str, expected: str) -> None:
    assert str(part_location(parse_part_prefix(text), 2, 4)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("s3://res/parts/x", "ending in '/'"),
        ("/data/parts", "ending in '/'"),
        ("s3://res", "ending in '/'"),
        ("s3://Bad_Bucket/p/", "not a valid S3 bucket name"),
        ("gs://b/p/", "unsupported location"),
    ],
)
def test_a_prefix_without_the_slash_or_unusable_is_a_usage_error(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as exc:
        parse_part_prefix(text)
    assert exc.value.exit_code == 64 and "\n" not in str(exc.value)


def test_shard_numbers_from_the_option_or_the_array_index() -> None:
    assert shard_numbers("4", None, ENV) == (2, 4)
    assert shard_numbers("4", "1", ENV) == (1, 4)  # an explicit --shard-index wins
    for count, index, env, message in [
        ("4", None, {}, "no --shard-index and no AWS_BATCH_JOB_ARRAY_INDEX"),
        ("2", None, ENV, r"shard index 2 outside 0\.\.1"),
        ("x", None, ENV, "--shard-of='x' is not an integer"),
        ("0", "0", ENV, "at least 1"),
        ("4", "-1", ENV, "outside"),
    ]:
        with pytest.raises(UsageError, match=message):
            shard_numbers(count, index, env)


def _cmd(*args: str):  # type: ignore[no-untyped-def]
    return parse_command(["alignstats", *args])


def test_the_shard_form() -> None:
    cmd = _cmd(
        "--shard-of", "4", "--part-out", "s3://res/p/d/", "-t", "s3://ref/t.bed", "-i", "s3://inbox/x.bam"
    )
    req = fanout_request(cmd, ENV)
    assert isinstance(req, ShardRequest) and (req.index, req.count) == (2, 4)
    assert str(req.part) == "s3://res/p/d/part-2-of-4.json"
    assert req.prefix_slot.kind is Kind.PART_PREFIX and req.prefix_slot.role is Role.OUTPUT
    out = with_part_output(cmd, req)
    [part] = out.outputs
    assert part.kind is Kind.PART and part.location == req.part and part.location.name == "part-2-of-4.json"
    assert out.render({part.number: "out/1/part-2-of-4.json"})[1:5] == [
        "--shard-of",
        "4",
        "--part-out",
        "out/1/part-2-of-4.json",
    ]
    assert fanout_request(_cmd("-C", "-i", "s3://inbox/x.bam", "-o", "s3://res/x.json"), ENV) is None


def test_the_merge_form_takes_every_operand_as_a_part() -> None:
    parts = [f"s3://res/p/d/part-{i}-of-3.json" for i in range(3)]
    cmd = _cmd("--merge-parts", "-o", "s3://res/r/x.json", *parts)
    req = fanout_request(cmd, {})
    assert isinstance(req, MergeRequest) and [s.text for s in req.parts] == parts
    assert all(s.kind is Kind.PART and s.role is Role.INPUT for s in req.parts)
    assert [s.kind for s in cmd.outputs] == [Kind.REPORT]
    # without --merge-parts an S3 operand has no role: a usage error, as before
    with pytest.raises(UsageError, match="has no input/output role"):
        _cmd("-C", parts[0])


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (["--shard-of", "2", "-i", "x.bam"], UsageError, "needs --part-out"),
        (
            ["--shard-of", "2", "--part-out", "p/", "-i", "x.bam", "-o", "r.json"],
            UsageError,
            "-o has no meaning",
        ),
        (
            ["--shard-of", "2", "--part-out", "p/", "-r", "r.bed", "-i", "x.bam"],
            CannotShard,
            "-r reads records",
        ),
        (["--shard-of", "2", "--part-out", "p/", "-i", "-"], CannotShard, "the input is stdin"),
        (["--shard-of", "2", "--part-out", "p/"], CannotShard, "the input is stdin"),
        (["--part-out", "p/", "-i", "x.bam"], UsageError, "only for a shard child"),
        (["--shard-of", "2", "--merge-parts", "a.json"], UsageError, "two different jobs"),
        (["--merge-parts", "--part-out", "p/", "a.json"], UsageError, "belong to a shard child"),
        (["--merge-parts", "-o", "r.json"], UsageError, "needs part files"),
    ],
)
def test_forms_that_cannot_work_are_usage_errors(args: list[str], error: type, message: str) -> None:
    with pytest.raises(error, match=message) as exc:
        fanout_request(_cmd(*args), ENV)
    assert exc.value.exit_code == 64
    if error is CannotShard:
        assert str(exc.value).startswith("cannot shard: ")


def test_part_out_without_the_slash_fails_while_parsing() -> None:
    with pytest.raises(UsageError, match="--part-out s3://res/p/d: give a prefix ending in '/'"):
        _cmd("--shard-of", "2", "--part-out", "s3://res/p/d", "-i", "s3://inbox/x.bam")


def _input(uri: str, size: int = 100, etag: str = "e1", path: str | None = None) -> Input:
    loc = parse_location(uri)
    return Input(loc, ObjectInfo(loc, size, etag, loc.version_id), uri, local_path=path)


def test_a_part_carries_the_reports_input_and_the_merge_checks_it(tmp_path: Path) -> None:
    paths = []
    for i, etag in enumerate(["e1", "e1", "e2"]):
        path = tmp_path / f"part-{i}-of-3.json"
        path.write_text(json.dumps({"format": "alignbatch-engine-part/1", "pieces": []}))
        annotate_part(path, _input("s3://inbox/x.bam?versionId=v1", etag=etag))
        paths.append(path)
    doc = json.loads(paths[0].read_text())
    assert doc["report_input"] == {"name": "s3://inbox/x.bam", "size": 100, "etag": "e1", "version_id": "v1"}
    assert doc["format"] == "alignbatch-engine-part/1"  # the engine's own keys untouched
    cmd = _cmd("--merge-parts", *map(str, paths))
    req = fanout_request(cmd, {})
    assert isinstance(req, MergeRequest)
    inputs = {s.number: _input(f"s3://res/{s.location.name}", path=s.text) for s in req.parts}
    two = MergeRequest(req.parts[:2])
    assert merge_report_input(inputs, two) == ("s3://inbox/x.bam", 100)
    with pytest.raises(UsageError, match=r"cannot merge: .* were made from different inputs"):
        merge_report_input(inputs, req)
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    only = MergeRequest((req.parts[0],))
    assert merge_report_input({req.parts[0].number: _input("s3://res/p.json", path=str(plain))}, only) is None


def test_paths_seen_from_the_scratch_root(tmp_path: Path) -> None:
    root = tmp_path / "scratch" / "job-1" / "1"
    assert _seen_from(str(root / "in" / "0" / "x.bam"), root) == "in/0/x.bam"
    assert _seen_from("/data/x.bam", root) == "/data/x.bam"
    assert _seen_from(str(tmp_path / "scratch" / "other"), root) == str(tmp_path / "scratch" / "other")
