"""Histogram statistics (§4.9) and C printf formatting of the report."""

from __future__ import annotations

import math

from worker.engine.report import fmt_float, pct, render_json, render_tsv
from worker.engine.stats import hist_stats


def test_lower_median_mode_and_sample_sd() -> None:
    st = hist_stats([(10, 1), (20, 2), (30, 1)])
    assert st.mean == 20.0
    assert st.median == 20  # smallest v with cumulative count >= 4 // 2
    assert st.mode == 20
    assert math.isclose(st.sd, math.sqrt(200 / 3))


def test_median_is_the_lower_one_and_single_value() -> None:
    assert hist_stats([(1, 1), (9, 1)]).median == 1
    st = hist_stats([(7, 1)])
    assert (st.median, st.mode, st.sd) == (7, 7, 0.0)


def test_empty_histogram() -> None:
    st = hist_stats([])
    assert (st.mean, st.median, st.mode, st.sd) == (0.0, 0, 0, 0.0)


def test_coverage_median_uses_given_midpoint() -> None:
    # 10 zero-depth bases, 2 at depth 5: mid 6 -> 0; mid 11 -> 5
    assert hist_stats([(0, 10), (5, 2)], mid=6).median == 0
    assert hist_stats([(0, 10), (5, 2)], mid=11).median == 5


def test_uint64_wrapped_values() -> None:
    st = hist_stats([((1 << 64) - 1, 1)])
    assert st.median == (1 << 64) - 1


def test_c_float_and_pct_formatting() -> None:
    assert fmt_float(100.0) == "100.000000"
    assert fmt_float(2 / 3) == "0.666667"
    assert pct(1, 3) == "33.333333"
    assert pct(5, 0) == "0.000000"
    assert pct(-1, -1) == "100.000000"  # wrapped uint64 on both sides


def test_render_json_layout_and_tsv() -> None:
    pairs = [("InputFileName", '"a b.bam"'), ("TotalRecords", "3")]
    assert render_json(pairs) == '{\n    "InputFileName": "a b.bam",\n    "TotalRecords": 3\n}\n'
    assert render_tsv(pairs) == "InputFileName\ta b.bam\nTotalRecords\t3\n"
