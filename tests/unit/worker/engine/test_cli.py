"""alignstats v0.11 option parsing: getopt behaviour, C number casts, validation errors."""

from __future__ import annotations

import pytest

from worker.engine.cli import UsageExit, getopt, main, parse_args
from worker.engine.errors import ToolError
from worker.engine.options import declared_format
from worker.engine.run import validate


def test_getopt_clusters_attached_args_and_permutation() -> None:
    assert getopt(["-CW", "-ifoo.bam", "x", "-o", "r.json"], "CWi:o:") == [
        ("C", None),
        ("W", None),
        ("i", "foo.bam"),
        ("o", "r.json"),
    ]


def test_getopt_errors_like_glibc() -> None:
    with pytest.raises(UsageExit) as exc:
        getopt(["-Z"], "C")
    assert exc.value.message == "alignstats: invalid option -- 'Z'"
    with pytest.raises(UsageExit) as exc:
        getopt(["-i"], "i:")
    assert exc.value.message == "alignstats: option requires an argument -- 'i'"


def test_number_casts() -> None:
    o = parse_args(["-q", "300", "-b", "20", "-F", "0x400", "-f", "2", "-P", "4", "-C"])
    assert (o.min_mapq, o.min_baseq, o.excluded_flags, o.required_flags, o.hts_threads) == (44, 20, 0, 2, 4)
    o = parse_args(["-F", "5000", "-C"])
    assert o.excluded_flags == 0
    assert o.warnings


def test_defaults_capture_on() -> None:
    o = parse_args(["-i", "x.bam"])
    assert (o.alignment, o.wgs, o.capture, o.input, o.output) == (True, True, True, "x.bam", None)
    with pytest.raises(ToolError, match="No target file specified"):
        validate(o)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-A", "-C", "-W"], "At least one of -A, -C, or -W must be unset."),
        (["-C", "-M", "-O"], "Options -M and -O cannot be set simultaneously."),
    ],
)
def test_validation_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ToolError) as exc:
        validate(parse_args(argv))
    assert exc.value.lines == [f"[AlignStats ERROR] {message}"]
    assert exc.value.exit_code == 1


def test_format_guess() -> None:
    assert declared_format(parse_args(["-i", "x.cram"])) == "cram"
    assert declared_format(parse_args(["-i", "x.BAM", "-j", "BAM"])) == "bam"
    assert declared_format(parse_args(["-C"])) == "sam"
    o = parse_args(["-i", "x.txt"])
    assert declared_format(o) == "sam"
    assert o.warnings == ["[AlignStats WARNING] Input filename has an unrecognized file extension."]


def test_format_option_is_exact_after_four_bytes() -> None:
    """-j keeps 4 bytes and must then equal sam/bam/cram; otherwise SAM with a warning, name ignored
    (found by the differential test against the real tool)."""
    assert declared_format(parse_args(["-i", "x.bam", "-j", "CRAMS"])) == "cram"
    o = parse_args(["-i", "x.bam", "-j", "bamx"])
    assert declared_format(o) == "sam"
    assert o.warnings == ["[AlignStats WARNING] Unrecognized input format received from -j option."]


def test_help_and_noargs_exit_codes(capsys) -> None:
    assert main(["-h"]) == 0
    assert capsys.readouterr().err.startswith("AlignStats v0.11 (using HTSlib 1.16)\nUsage: alignstats")
    assert main([]) == 1


def test_format_extra() -> None:
    assert parse_args(["--format", "tsv", "-C"]).report_format == "tsv"
    assert parse_args(["--format=json", "-C"]).report_format == "json"
    with pytest.raises(UsageExit) as exc:
        parse_args(["--format", "xml", "-C"])
    assert exc.value.code == 64


def test_a_failed_run_removes_a_partial_report_but_never_a_device(tmp_path, capsys) -> None:
    from pathlib import Path

    corrupt = Path(__file__).resolve().parents[3] / "data" / "h_corrupt_middle.bam"
    report = tmp_path / "report.txt"
    assert main(["-C", "-i", str(corrupt), "-o", str(report)]) == 65
    assert not report.exists()  # no partial report for an uploader to pick up
    # -o through a symlink to /dev/null: the old code unlinked the path it was given (as root, given
    # /dev/null itself, that removed the device); the link must survive.
    link = tmp_path / "null"
    link.symlink_to("/dev/null")
    assert main(["-C", "-i", str(corrupt), "-o", str(link)]) == 65
    assert link.is_symlink()
    assert "corrupt BAM block" in capsys.readouterr().err


def test_option_warnings_are_the_tools() -> None:
    """Texts of the real tool (found by the differential test): -f/-F over 4095, -n below 16384."""
    o = parse_args(["-F", "5000", "-f", "4096", "-n", "1", "-C"])
    assert o.warnings == [
        "[AlignStats WARNING] Invalid flag received from -F option. Setting to 0.",
        "[AlignStats WARNING] Invalid flag received from -f option. Setting to 0.",
        "[AlignStats WARNING] Given value for -r is too small, using 16384",
    ]
    # -n is cast to uint32 like the tool: -1 is huge, not too small
    assert parse_args(["-n", "-1", "-C"]).warnings == []
