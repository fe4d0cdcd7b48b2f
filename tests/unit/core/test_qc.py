"""core.qc and core.qc_file: the thresholds file (parsing, FILE:LINE errors) and golden-report verdicts."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from core import qc, qc_file
from core.exitcodes import ExitCode

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "golden"
SHIPPED = Path(__file__).resolve().parents[3] / "config" / "thresholds.toml"


def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


def parse(text: str) -> qc.Thresholds:
    return qc_file.parse_thresholds(textwrap.dedent(text), "t.toml")


def error_of(text: str) -> str:
    with pytest.raises(qc_file.ThresholdsError) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message
    assert info.value.exit_code == ExitCode.CONFIG
    return message


MINIMAL = """\
version = "1"
default_assay = "wgs"

[[assay]]
name = "wgs"
prefixes = ["wgs/"]

[[assay.rule]]
metric = "MappedReadsPct"
min = { warn = 95, fail = 90 }

[[assay]]
name = "exome"
prefixes = ["exome/", "exome/deep/"]

[[assay.rule]]
metric = "CapCoverageMean"
min = { warn = 80, fail = 50 }

[[assay]]
name = "deep"
prefixes = ["exome/deep/x"]
"""


def test_report_keys_match_a_full_golden_report_in_order() -> None:
    # d_capture__t has alignment + WGS + capture sections: the full 223-key report.
    assert list(golden("d_capture__t")) == list(qc.REPORT_KEYS)
    assert len(qc.REPORT_KEYS) == 223
    for name in ("a_wgs__C", "f_se__C", "i_edge__t"):
        assert set(golden(name)) <= set(qc.REPORT_KEYS)
    assert "InputFileName" not in qc.METRICS


def test_shipped_defaults_parse_and_name_only_real_metrics() -> None:
    thresholds = qc_file.load_thresholds(SHIPPED)
    assert {a.name for a in thresholds.assays} >= {"wgs", "exome", "panel"}
    assert thresholds.default_assay == "wgs"
    assert thresholds.sha256 == __import__("hashlib").sha256(SHIPPED.read_bytes()).hexdigest()
    capture_only = {k for k in golden("d_capture__t") if k not in golden("a_wgs__C")}
    for assay, rule in qc.iter_rules(thresholds):
        assert rule.metric in qc.METRICS
        # WGS rules must not need capture metrics (a wgs sample is run with -C).
        if assay.name == "wgs":
            assert rule.metric not in capture_only, rule.metric
    assert qc_file.validate_thresholds_file(SHIPPED) == thresholds


def test_assay_by_longest_prefix_else_default() -> None:
    t = parse(MINIMAL)
    assert t.assay_for("wgs/s1.bam").name == "wgs"
    assert t.assay_for("exome/s1.bam").name == "exome"
    assert t.assay_for("exome/deep/s1.bam").name == "exome"
    assert t.assay_for("exome/deep/x1.bam").name == "deep"
    assert t.assay_for("other/s1.bam").name == "wgs"


def test_verdict_levels_thresholds_and_row_columns() -> None:
    t = parse(MINIMAL)
    report = golden("c_flags__C")  # MappedReadsPct 95.098129
    assert t.verdict(report, "wgs/a.bam").level is qc.Level.PASS
    assert t.verdict({**report, "MappedReadsPct": 95.0}, "wgs/a.bam").level is qc.Level.PASS  # equal passes
    warn = t.verdict({**report, "MappedReadsPct": 94.9}, "wgs/a.bam")
    assert warn.level is qc.Level.WARN
    assert warn.failed == (qc.FailedRule("MappedReadsPct", 94.9, 95.0, qc.Level.WARN, qc.Direction.MIN),)
    bad = t.verdict(golden("g_empty__C"), "wgs/a.bam")
    assert bad.level is qc.Level.FAIL
    assert bad.failed[0].threshold == 90.0
    assert bad.failed[0].describe() == "MappedReadsPct 0 < 90 (fail)"
    cols = bad.row_columns()
    assert cols["qc_verdict"] == "fail"
    assert cols["qc_assay"] == "wgs"
    assert cols["qc_rules_version"] == "1"
    assert len(cols["qc_rules_sha256"]) == 64
    assert cols["qc_failed_rules"] == [
        {"metric": "MappedReadsPct", "value": 0.0, "threshold": 90.0, "level": "fail", "direction": "min"}
    ]
    json.dumps(cols)  # rows are JSON


def test_missing_metric_counts_at_the_strongest_level() -> None:
    t = parse(MINIMAL)
    verdict = t.verdict(golden("a_wgs__C"), "exome/a.bam")  # no Cap* keys: run without a target BED
    assert verdict.level is qc.Level.FAIL
    assert verdict.failed[0].value is None
    assert "missing" in verdict.failed[0].describe()


def test_max_direction_and_warn_only_bound() -> None:
    t = parse(
        """\
        version = "v"
        [[assay]]
        name = "a"
        [[assay.rule]]
        metric = "DuplicateReadsPct"
        max = { warn = 10, fail = 20 }
        [[assay.rule]]
        metric = "InsertSizeMedian"
        min.warn = 200
        max.warn = 600
        """
    )
    assert t.default_assay == "a"  # the first assay when no default is named
    report = {"DuplicateReadsPct": 14.8, "InsertSizeMedian": 229}
    v = t.verdict(report, "x")
    assert v.level is qc.Level.WARN
    assert [(f.metric, f.direction, f.threshold) for f in v.failed] == [
        ("DuplicateReadsPct", qc.Direction.MAX, 10.0)
    ]
    v = t.verdict({"DuplicateReadsPct": 25, "InsertSizeMedian": 700}, "x")
    assert [(f.level, f.direction) for f in v.failed] == [
        (qc.Level.FAIL, qc.Direction.MAX),
        (qc.Level.WARN, qc.Direction.MAX),
    ]


def test_shipped_defaults_on_golden_reports() -> None:
    t = qc_file.load_thresholds(SHIPPED)
    # e_large__t: 183x WGS-like depth, good library -> passes as WGS.
    assert t.verdict(golden("e_large__t"), "wgs/e.bam").level is qc.Level.PASS
    # d_capture__t: 82x mean target depth, 99.99% >= 20x, 57% on target/buffer -> passes as exome.
    assert t.verdict(golden("d_capture__t"), "exome/d.bam").level is qc.Level.PASS
    # a_wgs__C: the small simulated genome is only ~18x -> fails WGS depth.
    failed = {f.metric for f in t.verdict(golden("a_wgs__C"), "wgs/a.bam").failed}
    assert failed == {"WgsCoverageMean", "WgsCoverageBases20Pct"}
    assert t.verdict(golden("g_empty__C"), "x.bam").level is qc.Level.FAIL


# ----------------------------------------------------------------------------------------- errors


def test_unknown_metric_names_file_line_and_nearest_name() -> None:
    message = error_of(
        """\
        version = "1"

        [[assay]]
        name = "wgs"

        [[assay.rule]]
        metric = "MappedReadsPct"
        min = { fail = 90 }

        [[assay.rule]]
        # a typo
        metric = "DuplicateReadPct"
        max = { fail = 30 }
        """
    )
    assert message == ("t.toml:12: unknown metric 'DuplicateReadPct'; did you mean 'DuplicateReadsPct'?")


def test_unknown_metric_in_second_assay_points_at_its_line() -> None:
    text = MINIMAL.replace('metric = "CapCoverageMean"', 'metric = "CapCovrageMeen"')
    message = error_of(text)
    line = text.splitlines().index('metric = "CapCovrageMeen"') + 1
    assert message.startswith(f"t.toml:{line}: unknown metric 'CapCovrageMeen'")
    assert "did you mean 'CapCoverageMean'?" in message


def test_nonsense_metric_has_no_suggestion() -> None:
    message = error_of('version = "1"\n[[assay]]\nname = "a"\n[[assay.rule]]\nmetric = "zzz"\nmin.fail = 1\n')
    assert message == "t.toml:5: unknown metric 'zzz'"


def test_toml_syntax_error_names_the_line() -> None:
    message = error_of('version = "1"\n[[assay]]\nname = "a"\nprefixes = ["x/"\n')
    assert message.startswith("t.toml:4: not valid TOML: Unclosed array (at end of file)")
    message = error_of('version = "1"\n[[assay]]\nname = a\n')
    assert message.startswith("t.toml:3: not valid TOML: Invalid value (column 8)")


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("min = { warn = 80, fail = 90 }", 6, "min.warn (80) is below min.fail (90)"),
        ("max = { warn = 30, fail = 20 }", 6, "max.warn (30) is above max.fail (20)"),
        ('min = { warn = "90" }', 6, "min.warn must be a finite number, not '90'"),
        ("min = { wran = 90 }", 6, "unknown level 'wran' in min; did you mean 'warn'?"),
        ("min = 90", 6, "min must be a table like { warn = 90, fail = 80 }"),
        ("mni = { warn = 90 }", 6, "unknown rule key 'mni'; did you mean 'min'?"),
        ("", 4, "rule needs 'min' and/or 'max'"),
        ("min.fail = true", 6, "min.fail must be a finite number, not True"),
        ("min.fail = nan", 6, "min.fail must be a finite number"),
    ],
)
def test_malformed_rules(body: str, line: int, fragment: str) -> None:
    text = f'version = "1"\n[[assay]]\nname = "a"\n[[assay.rule]]\nmetric = "MappedReadsPct"\n{body}\n'
    message = error_of(text)
    assert message.startswith(f"t.toml:{line}: "), message
    assert fragment in message


def test_bound_as_a_sub_table_header_is_located() -> None:
    text = (
        'version = "1"\n[[assay]]\nname = "a"\n[[assay.rule]]\nmetric = "MappedReadsPct"\n'
        "[assay.rule.min]\nwarn = 80\nfail = 90\n"
    )
    assert error_of(text).startswith("t.toml:6: MappedReadsPct: min.warn (80) is below")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[assay]]\nname = "a"\n', "t.toml:1: needs a non-empty string 'version'"),
        ('version = "1"\n', "t.toml:1: needs at least one [[assay]] table"),
        ('version = "1"\n\n[assay]\nname = "a"\n', "t.toml:3: write each assay as [[assay]]"),
        ('version = "1"\nverison = 2\n[[assay]]\nname = "a"\n', "t.toml:2: unknown top-level key 'verison'"),
        (
            'version = "1"\ndefault_assay = "wsg"\n[[assay]]\nname = "wgs"\n',
            "t.toml:2: default_assay 'wsg' is not an assay here (wgs); did you mean 'wgs'?",
        ),
        (
            'version = "1"\n[[assay]]\nname = "a"\nprefixes = ["x/"]\n[[assay]]\nname = "b"\n'
            'prefixes = ["y/", "x/"]\n',
            "t.toml:7: prefix 'x/' is in both assay 'a' and 'b'",
        ),
        (
            'version = "1"\n[[assay]]\nname = "a"\n[[assay]]\n\nname = "a"\n',
            "t.toml:6: assay 'a' is defined twice",
        ),
        (
            'version = "1"\n[[assay]]\nnmae = "a"\n',
            "t.toml:3: unknown assay key 'nmae'; did you mean 'name'?",
        ),
        ('version = "1"\n[[assay]]\nprefixes = ["a/"]\n', "t.toml:2: [[assay]] needs a string 'name'"),
        ('version = "1"\n[[assay]]\nname = "a"\nprefixes = [""]\n', "t.toml:4: assay 'a': 'prefixes' must"),
    ],
)
def test_malformed_files(text: str, expected: str) -> None:
    assert error_of(text).startswith(expected)


def test_multiline_string_does_not_confuse_line_finding() -> None:
    text = (
        'version = "1"\n[[assay]]\nname = "a"\ndescription = """\n[[assay.rule]]\nmetric = "x"\n"""\n'
        '[[assay.rule]]\nmetric = "Q30BasePct"\nmin.fail = 1\n'
    )
    assert error_of(text).startswith("t.toml:9: unknown metric 'Q30BasePct'")


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(qc_file.ThresholdsError, match=r"nope.toml: thresholds file not found"):
        qc_file.validate_thresholds_file(missing)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(qc_file.ThresholdsError, match=r"bin.toml: not UTF-8"):
        qc_file.load_thresholds(binary)
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'version = "1"\n[[assay]]\nname = "a"\n[[assay.rule]]\nmetric = "WgsCoverageMaen"\nmin.fail = 1\n'
    )
    with pytest.raises(qc_file.ThresholdsError) as info:
        qc_file.load_thresholds(bad)
    assert str(info.value) == f"{bad}:5: unknown metric 'WgsCoverageMaen'; did you mean 'WgsCoverageMean'?"
