"""The worker command line as a typed value: render/parse round trips, JSON, JobRef, old ledgers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.command import JobRef, WorkerCommand
from core.errors import UsageError

FULL = WorkerCommand(
    tool="alignstats",
    tool_args=("-C", "-i", "s3://b/k.bam", "-o", "s3://r/out.json"),
    mode="stream",
    index="s3://r/k.bam.bai",
    inputs=("s3://b/extra.bed",),
    outputs=("s3://r/out.json", "s3://r/second"),
    scratch="/scratch",
    sse_kms_key_id="arn:aws:kms:eu-west-1:1:key/x",
    log_level="DEBUG",
)


def test_render_then_parse_is_the_same_command() -> None:
    assert WorkerCommand.parse(FULL.args()) == FULL
    plain = WorkerCommand("alignbatch-index", ("-i", "x.bam"))
    assert plain.argv() == ("alignbatch-worker", "--", "alignbatch-index", "-i", "x.bam")
    assert WorkerCommand.parse(plain.args()) == plain


def test_parse_accepts_what_the_worker_argparse_accepts() -> None:
    cmd = WorkerCommand.parse(["--stage", "--index=s3://i", "--log-level", "info", "--", "t", "--index", "x"])
    assert cmd.mode == "stage" and cmd.index == "s3://i" and cmd.log_level == "INFO"
    assert cmd.tool == "t" and cmd.tool_args == ("--index", "x")  # after `--` everything is the tool's
    for bad in (["--", ], [], ["--stage", "--stream", "--", "t"], ["--bogus", "--", "t"],
                ["--log-level", "LOUD", "--", "t"]):  # fmt: skip
        with pytest.raises(UsageError):
            WorkerCommand.parse(bad)


def test_job_refs_render_only_where_typed() -> None:
    cmd = WorkerCommand(
        "alignbatch-summary",
        ("--meta", "inbox_key=a{job_id:summary}.bam", "--meta", JobRef("alignstats", "job_id_alignstats=")),
    )
    argv = cmd.argv({"alignstats": "J2", "summary": "J3"})
    assert "inbox_key=a{job_id:summary}.bam" in argv  # a key's text is never substituted
    assert "job_id_alignstats=J2" in argv
    assert cmd.argv()[-1] == "job_id_alignstats="  # a step that did not run renders as ''
    assert cmd.refs() == ("alignstats",)


def test_json_round_trip_keeps_job_refs() -> None:
    cmd = WorkerCommand("alignbatch-summary", ("--meta", JobRef("index", "job_id_index=")), index="s3://i")
    assert WorkerCommand.from_json(cmd.to_json()) == cmd
    assert WorkerCommand.from_json(FULL.to_json()) == FULL


def test_an_old_ledger_command_loads_with_its_tokens_as_job_refs() -> None:
    old = [
        "alignbatch-worker", "--", "alignbatch-summary", "--report", "s3://r/{job_id:summary}.json",
        "--meta", "job_id_alignstats={job_id:alignstats}", "--meta", "sample={job_id:index}",
    ]  # fmt: skip
    cmd = WorkerCommand.from_json(old)
    assert cmd.tool_args[3] == JobRef("alignstats", "job_id_alignstats=")
    rendered = cmd.argv({"alignstats": "J2", "index": "J1", "summary": "J3"})
    # Only the planner's own meta form was a token; anything else was text that happened to look like one.
    assert "s3://r/{job_id:summary}.json" in rendered and "sample={job_id:index}" in rendered
    assert "job_id_alignstats=J2" in rendered


_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(
    tool=_text.filter(lambda s: s != "--"),
    tool_args=st.lists(_text, max_size=5),
    index=st.none() | _text.filter(lambda s: not s.startswith("-")),
    outputs=st.lists(_text.filter(lambda s: not s.startswith("-")), max_size=3),
)
def test_round_trip_property(tool: str, tool_args: list[str], index: str | None, outputs: list[str]) -> None:
    cmd = WorkerCommand(tool, tuple(tool_args), index=index, outputs=tuple(outputs))
    assert WorkerCommand.parse(cmd.args()) == cmd
    assert WorkerCommand.from_json(cmd.to_json()) == cmd
