"""controller.qc.batch_report: the model (baselines, outliers, throughput, ordering) and the HTML."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.qc import batch_report as br

END = datetime(2026, 12, 1, 12, tzinfo=UTC)
START = END - timedelta(hours=6)


def row(
    i: int, value: float, *, assay: str = "wgs", verdict: str = "pass", when: datetime | None = None
) -> dict:
    return {
        "run_id": f"r{i}",
        "sample": f"S{i}",
        "inbox_key": f"{assay}/S{i}.bam",
        "qc_assay": assay,
        "qc_verdict": verdict,
        "qc_failed_rules": [],
        "written_at": (when or START + timedelta(minutes=10 * i)).isoformat(),
        "WgsCoverageMean": value,
    }


METRIC = br.KeyMetric("WgsCoverageMean", "Mean genome coverage", "X")


def test_baseline_median_and_robust_band() -> None:
    assert br.baseline([30.0] * 4) is None  # too few to judge
    b = br.baseline([28.0, 29.0, 30.0, 31.0, 32.0, 300.0])  # one wild value barely moves it
    assert b is not None
    assert b.median == 30.5
    mad = 1.5
    assert b.low == pytest.approx(30.5 - 3 * 1.4826 * mad)
    assert b.high == pytest.approx(30.5 + 3 * 1.4826 * mad)
    flat = br.baseline([230.0] * 10)  # MAD 0: the band is still 1 % wide either side
    assert flat is not None
    assert (flat.low, flat.high) == pytest.approx((227.7, 232.3))


def test_outliers_named_per_assay_only() -> None:
    history = [row(100 + i, 30.0 + (i % 3), when=START - timedelta(days=1)) for i in range(10)]
    history += [row(200 + i, 8.0, assay="exome", when=START - timedelta(days=1)) for i in range(10)]
    rows = [row(1, 31.0), row(2, 12.0), row(3, 8.05, assay="exome"), row(4, 45.0)]
    wgs = br.distribution(METRIC, rows, history, "wgs")
    assert wgs is not None and wgs.baseline is not None
    assert [(o.sample, o.side) for o in wgs.outliers] == [("S2", "low"), ("S4", "high")]
    exome = br.distribution(METRIC, rows, history, "exome")
    assert exome is not None
    assert exome.outliers == ()  # 8.05X is normal for an exome's genome coverage
    assert br.distribution(METRIC, rows, history, "panel") is None


def test_throughput_lists_every_hour() -> None:
    rows = [
        row(1, 30, when=START + timedelta(minutes=5)),
        row(2, 30, verdict="fail", when=START + timedelta(minutes=9)),
    ]
    rows.append(row(3, 30, when=START + timedelta(hours=4, minutes=1)))
    rows.append(row(4, 30, when=END + timedelta(minutes=1)))  # after the period
    hours = br.throughput(rows, START, END)
    assert len(hours) == 6
    assert hours[0] == (START, {"pass": 1, "fail": 1})
    assert hours[1] == (START + timedelta(hours=1), {})
    assert hours[4][1] == {"pass": 1}


def test_model_orders_worst_first_and_reads_rules_from_json_text() -> None:
    rules = json.dumps(
        [{"metric": "WgsCoverageMean", "value": 12.0, "threshold": 20.0, "level": "fail", "direction": "min"}]
    )
    rows = [
        row(1, 31.0),
        {**row(2, 12.0, verdict="fail"), "qc_failed_rules": rules},
        row(3, 25.0, verdict="warn"),
    ]
    issues = [
        br.RunIssue("r9", "Z", "wgs/Z.bam", br.IssueKind.STUCK, "RUNNABLE 2 h"),
        br.RunIssue("r8", "Y", "wgs/Y.bam", br.IssueKind.FAILED, "exit 65"),
    ]
    model = br.build_report(rows, [], issues, period_start=START, period_end=END, now=END, plots=False)
    assert [r.verdict for r in model.runs] == ["fail", "warn", "pass"]
    assert model.runs[0].failed_rules == ("WgsCoverageMean 12 < 20 (fail)",)
    assert model.verdict_counts == {"pass": 1, "warn": 1, "fail": 1}
    assert [i.kind for i in model.issues] == [br.IssueKind.FAILED, br.IssueKind.STUCK]
    assert model.distributions[0].baseline is None  # no history yet


def test_html_escapes_names_and_is_deterministic(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    history = [row(100 + i, 30.0, when=START - timedelta(days=1)) for i in range(6)]
    rows = [row(1, 31.0), {**row(2, 2.0, verdict="fail"), "sample": evil}]
    kwargs = {"period_start": START, "period_end": END, "now": END}
    html = br.render_batch_report(rows, history, **kwargs)
    assert evil not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script>") == 2  # the page's own two scripts
    assert html == br.render_batch_report(rows, history, **kwargs)
    out = tmp_path / "sub" / "report.html"
    br.write_report(out, html)
    assert out.read_text() == html
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


def test_empty_period_renders() -> None:
    html = br.render_batch_report([], [], period_start=START, period_end=END, now=END)
    assert 'id="no-runs"' in html
    assert 'id="no-issues"' in html


def test_render_from_history_reads_period_and_trailing_rows(tmp_path: Path) -> None:
    from controller.qc import history

    path = tmp_path / "history.parquet"
    old = [row(100 + i, 30.0 + i % 2, when=START - timedelta(days=2, hours=i)) for i in range(8)]
    ancient = [row(200, 99.0, when=START - timedelta(days=40))]
    now = [row(1, 31.0), row(2, 3.0, verdict="fail")]
    history.append_rows(path, old + ancient + now)
    html = br.render_from_history(path, period_start=START, period_end=END, now=END)
    assert html.count('<tr data-run-id="') == 2
    assert 'data-outliers="1"' in html  # S2 at 3X against a ~30X baseline of 8 samples
    assert "n = 8" in html  # the 40-day-old row is outside the trailing window
