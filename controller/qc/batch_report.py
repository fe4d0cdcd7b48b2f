"""The operators' batch report: one static, self-contained HTML page for a period of runs.

    model = build_report(rows, history_rows, issues, period_start=..., period_end=...)   # pure
    html = render_html(model)                                                            # pure
    write_report(path, html)                                                             # atomic

`rows` are the period's sample rows (dicts as in table/results.jsonl, with the qc_* columns of
`core.qc.Verdict.row_columns`); `history_rows` the trailing rows the trends are drawn against (read with
`history.read_history(..., since=period_start - 30 days, until=period_start)`); `issues` the runs that did
not produce a row (failed, stuck, lost) with their reason and log link, which the controller takes from
its ledger.

Sections: the runs of the period (sortable table with verdict and failed rules), failed/stuck/lost runs,
one distribution per key metric (the period's samples against the trailing 30-day median and spread, the
samples outside it named), runs finished per hour.

Nothing is fetched when the page is viewed: CSS and the sorting script are inline and plots are inline
SVG drawn by matplotlib (docs/qc.md says why matplotlib). A `window.onerror` hook writes any script error
into `#js-errors`, which the browser test reads.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from controller.qc.history import read_history
from controller.qc.report_model import (
    HISTORY_COLUMNS,
    KEY_METRICS,
    MAD_SCALE,
    MIN_BASELINE,
    SPREAD_MADS,
    TABLE_METRICS,
    TRAILING,
    BatchReport,
    IssueKind,
    KeyMetric,
    MetricDistribution,
    Outlier,
    RunIssue,
    RunLine,
    _number,
    _row_time,
    _rule_text,
    baseline,
    dom_id,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _assay(row: Mapping[str, Any]) -> str:
    return str(row.get("qc_assay") or "")


def distribution(
    metric: KeyMetric,
    rows: Sequence[Mapping[str, Any]],
    history_rows: Sequence[Mapping[str, Any]],
    assay: str = "",
) -> MetricDistribution | None:
    """The period's values of one metric for one assay against that assay's trailing baseline (pure);
    None if no row of the assay has the metric."""
    rows = [r for r in rows if _assay(r) == assay]
    history_rows = [r for r in history_rows if _assay(r) == assay]
    values = []
    for row in rows:
        v = _number(row.get(metric.key))
        if v is not None:
            values.append(
                (str(row.get("sample", "")), str(row.get("run_id", "")), v, str(row.get("qc_verdict") or ""))
            )
    if not values:
        return None
    base = baseline([v for r in history_rows if (v := _number(r.get(metric.key))) is not None])
    outliers: list[Outlier] = []
    if base is not None:
        for sample, run_id, v, _ in values:
            if v < base.low or v > base.high:
                outliers.append(Outlier(sample, run_id, v, "low" if v < base.low else "high"))
    outliers.sort(key=lambda o: (o.sample, o.run_id))
    return MetricDistribution(assay, metric, tuple(values), base, tuple(outliers))


def throughput(
    rows: Iterable[Mapping[str, Any]], start: datetime, end: datetime
) -> list[tuple[datetime, dict[str, int]]]:
    """Rows finished per hour of the period, by verdict (pure). Every hour is listed, empty ones too,
    so a stall shows as a gap rather than disappearing."""
    first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hours: dict[datetime, Counter[str]] = {}
    t = first
    while t < end:
        hours[t] = Counter()
        t += timedelta(hours=1)
    for row in rows:
        when = _row_time(row)
        if when is None or not (start <= when < end):
            continue
        hour = when.replace(minute=0, second=0, microsecond=0)
        hours.setdefault(hour, Counter())[str(row.get("qc_verdict") or "none")] += 1
    return [(h, dict(c)) for h, c in sorted(hours.items())]


def build_report(
    rows: Sequence[Mapping[str, Any]],
    history_rows: Sequence[Mapping[str, Any]],
    issues: Sequence[RunIssue] = (),
    *,
    period_start: datetime,
    period_end: datetime,
    title: str = "alignbatch QC",
    now: datetime | None = None,
    metrics: Sequence[KeyMetric] = KEY_METRICS,
    plots: bool = True,
) -> BatchReport:
    """Everything the page shows, computed from the rows (pure but for drawing the SVG plots, which is
    deterministic: same input, same bytes)."""
    runs = []
    for row in rows:
        rules = row.get("qc_failed_rules") or []
        if isinstance(rules, str):
            try:
                rules = json.loads(rules)
            except ValueError:
                rules = [rules]
        runs.append(
            RunLine(
                run_id=str(row.get("run_id", "")),
                sample=str(row.get("sample", "")),
                inbox_key=str(row.get("inbox_key", "")),
                finished=_row_time(row),
                assay=str(row.get("qc_assay") or ""),
                verdict=str(row.get("qc_verdict") or ""),
                failed_rules=tuple(_rule_text(r) for r in rules),
                metrics=tuple(_number(row.get(k)) for k in TABLE_METRICS),
            )
        )
    order = {"fail": 0, "warn": 1, "": 2, "pass": 3}
    runs.sort(key=lambda r: (order.get(r.verdict, 2), r.sample, r.run_id))
    counts = Counter(r.verdict or "none" for r in runs)
    assays = sorted({_assay(r) for r in rows})
    dists = [d for a in assays for m in metrics if (d := distribution(m, rows, history_rows, a)) is not None]
    hourly = throughput(rows, period_start, period_end)
    versions = sorted({str(r.get("qc_rules_version")) for r in rows if r.get("qc_rules_version")})
    throughput_svg = ""
    if plots:
        from controller.qc import plots as plotting  # matplotlib: imported only when drawing

        dists = [
            MetricDistribution(
                d.assay, d.metric, d.values, d.baseline, d.outliers, plotting.distribution_svg(d)
            )
            for d in dists
        ]
        throughput_svg = plotting.throughput_svg(hourly)
    kind_order = {IssueKind.FAILED: 0, IssueKind.LOST: 1, IssueKind.STUCK: 2}
    return BatchReport(
        title=title,
        period_start=period_start,
        period_end=period_end,
        generated_at=now or datetime.now(UTC),
        runs=tuple(runs),
        verdict_counts=dict(counts),
        issues=tuple(sorted(issues, key=lambda i: (kind_order[i.kind], i.sample, i.run_id))),
        distributions=tuple(dists),
        throughput=tuple(hourly),
        rules_versions=tuple(versions),
        throughput_svg=throughput_svg,
        notes=(
            f"Trends: trailing {TRAILING.days} days before the period; band = median ± "
            f"{SPREAD_MADS:g} x {MAD_SCALE} x MAD; at least {MIN_BASELINE} samples needed.",
        ),
    )


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if value == int(value) and abs(value) >= 100 else f"{value:,.2f}"


def render_html(report: BatchReport) -> str:
    """The page (pure). Autoescaped; only the SVG made by matplotlib is inserted as markup."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["ts"] = lambda d: d.strftime("%Y-%m-%d %H:%M") if d else ""
    env.filters["iso"] = lambda d: d.isoformat() if d else ""
    env.filters["markup"] = jinja2.utils.markupsafe.Markup
    env.filters["dom_id"] = dom_id
    return env.get_template("batch_report.html.j2").render(r=report, metric_titles=_titles())


def _titles() -> dict[str, str]:
    titles = {m.key: f"{m.title} ({m.unit})" for m in KEY_METRICS}
    titles["CapCoverageMean"] = "Target cov (X)"
    titles["WgsCoverageMean"] = "Genome cov (X)"
    titles["InsertSizeMedian"] = "Insert (bp)"
    titles["MappedReadsPct"] = "Mapped (%)"
    titles["DuplicateReadsPct"] = "Dups (%)"
    return titles


def render_batch_report(
    rows: Sequence[Mapping[str, Any]],
    history_rows: Sequence[Mapping[str, Any]],
    issues: Sequence[RunIssue] = (),
    **kwargs: Any,
) -> str:
    """build_report + render_html in one call (what the controller's report command needs)."""
    return render_html(build_report(rows, history_rows, issues, **kwargs))


PERIOD_COLUMNS: tuple[str, ...] = (
    *HISTORY_COLUMNS,
    *TABLE_METRICS,
    "written_at",
    "qc_failed_rules",
    "qc_rules_version",
)


def render_from_history(
    history_path: str | Path,
    issues: Sequence[RunIssue] = (),
    *,
    period_start: datetime,
    period_end: datetime,
    **kwargs: Any,
) -> str:
    """The report for a period, with both the period's rows and the trailing 30 days read from the
    Parquet history (the controller's `report` command: no other input than the ledger's issues)."""
    rows = read_history(history_path, since=period_start, until=period_end, columns=PERIOD_COLUMNS)
    trailing = read_history(
        history_path, since=period_start - TRAILING, until=period_start, columns=HISTORY_COLUMNS
    )
    return render_batch_report(
        rows, trailing, issues, period_start=period_start, period_end=period_end, **kwargs
    )


def write_report(path: str | Path, html: str) -> None:
    """Write the page atomically (temp file + rename): a browser reloading it never sees half a page."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
