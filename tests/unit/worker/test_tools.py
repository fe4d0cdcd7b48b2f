"""Tool profiles: which argument is what, and how the argv is rewritten."""

from __future__ import annotations

import pytest

from core.errors import UsageError
from worker.tools import Kind, Role, parse_command


def test_alignstats_roles_and_render() -> None:
    cmd = parse_command(
        ["alignstats", "-C", "-i", "s3://inbox/a b.bam", "-o", "s3://res/r.json", "-T", "ref.fa", "-q", "20"]
    )
    roles = {s.option: (s.role, s.kind, s.text) for s in cmd.slots}
    assert roles == {
        "-i": (Role.INPUT, Kind.ALIGNMENTS, "s3://inbox/a b.bam"),
        "-o": (Role.OUTPUT, Kind.REPORT, "s3://res/r.json"),
        "-T": (Role.INPUT, Kind.FASTA, "ref.fa"),
    }
    i, o = cmd.slot_for("-i"), cmd.slot_for("-o")
    assert i is not None and o is not None
    argv = cmd.render({i.number: "-", o.number: "/scratch/out.json"}, extra=["-j", "bam"])
    assert argv == [
        "alignstats",
        "-C",
        "-i",
        "-",
        "-o",
        "/scratch/out.json",
        "-T",
        "ref.fa",
        "-q",
        "20",
        "-j",
        "bam",
    ]


def test_getopt_clusters_and_attached_values() -> None:
    cmd = parse_command(["alignbatch-alignstats", "-CDis3://b1b/x.bam", "-ts3://b1b/t.bed", "-q20"])
    assert [s.option for s in cmd.slots] == ["-i", "-t"]
    assert cmd.has_option("-C") and cmd.has_option("-D") and cmd.option_value("-q") == "20"
    assert cmd.render({0: "/x.bam", 1: "/t.bed"}) == [
        "alignbatch-alignstats",
        "-C",
        "-D",
        "-i",
        "/x.bam",
        "-t",
        "/t.bed",
        "-q",
        "20",
    ]


def test_unknown_remote_argument_is_an_error() -> None:
    with pytest.raises(UsageError, match="no input/output role"):
        parse_command(["alignstats", "-C", "-i", "x.bam", "s3://b1b/stray.bed"])
    with pytest.raises(UsageError, match="no input/output role"):
        parse_command(["mytool", "--in=s3://b1b/k"])


def test_declared_inputs_outputs_for_other_tools() -> None:
    cmd = parse_command(
        ["mytool", "--in=s3://b1b/k.txt", "-o", "s3://b1b/out.txt", "plain"],
        declared_inputs=["s3://b1b/k.txt"],
        declared_outputs=["s3://b1b/out.txt"],
    )
    assert [(s.role, s.prefix) for s in cmd.slots] == [(Role.INPUT, "--in="), (Role.OUTPUT, "")]
    assert cmd.render({0: "/s/k.txt", 1: "/s/out.txt"}) == [
        "mytool",
        "--in=/s/k.txt",
        "-o",
        "/s/out.txt",
        "plain",
    ]
    with pytest.raises(UsageError, match="does not appear"):
        parse_command(["mytool", "x"], declared_inputs=["s3://b1b/k"])


def test_summary_profile_keeps_meta_verbatim() -> None:
    cmd = parse_command(
        [
            "alignbatch-summary",
            "--report",
            "s3://r1r/x.json",
            "--output=s3://r1r/row.json",
            "--meta",
            "input=s3://i/x",
        ]
    )
    assert [(s.option, s.role) for s in cmd.slots] == [("--report", Role.INPUT), ("--output", Role.OUTPUT)]
    assert cmd.render({0: "/a", 1: "/b"}) == [
        "alignbatch-summary",
        "--report",
        "/a",
        "--output=/b",
        "--meta",
        "input=s3://i/x",
    ]


def test_indexer_profile() -> None:
    cmd = parse_command(
        ["alignbatch-index", "-i", "s3://i1i/x.cram", "-T", "s3://ref/big.fa", "-o", "s3://r1r/x.cram.crai"]
    )
    assert "s3://ref/big.fa" in cmd.render({})  # passed on, never staged: a CRAM index needs no reference
    assert [(s.option, s.role, s.kind) for s in cmd.slots] == [
        ("-i", Role.INPUT, Kind.ALIGNMENTS),
        ("-o", Role.OUTPUT, Kind.FILE),
    ]


def test_bad_locations_and_missing_values() -> None:
    with pytest.raises(UsageError, match="names a bucket"):
        parse_command(["alignstats", "-i", "s3://bucket"])
    with pytest.raises(UsageError, match="needs a value"):
        parse_command(["alignstats", "-C", "-i"])
    with pytest.raises(UsageError, match="no tool"):
        parse_command([])


def test_worker_log_level_option_is_validated_and_normalised() -> None:
    from worker.cli import parse_args

    cmd = parse_args(["--log-level", "debug", "--", "alignstats", "-i", "x.bam"])
    assert cmd.log_level == "DEBUG" and list(cmd.tool_command()) == ["alignstats", "-i", "x.bam"]
    with pytest.raises(UsageError, match="--log-level"):  # exit 64, not a logging KeyError
        parse_args(["--log-level", "loud", "--", "alignstats"])


def test_inputs_may_be_pinned_outputs_may_not() -> None:
    cmd = parse_command(("alignstats", "-C", "-i", "s3://bk1/x.bam?versionId=v1", "-o", "s3://bk1/x.json"))
    [main] = [s for s in cmd.inputs if s.option == "-i"]
    assert main.location.version_id == "v1" and main.location.key == "x.bam"
    with pytest.raises(UsageError, match=r"-o s3://bk1/x\.json\?etag=abc: an output cannot be pinned"):
        parse_command(("alignstats", "-C", "-i", "s3://bk1/x.bam", "-o", "s3://bk1/x.json?etag=abc"))
