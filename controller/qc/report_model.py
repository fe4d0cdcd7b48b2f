"""The batch report's model: the records the page is built from, the baseline statistics and the
key metrics (pure, no plotting or templating), so the renderer and the plots share them without a cycle."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from controller.qc.history import parse_time

TRAILING = timedelta(days=30)
# A robust spread: median ± 3 scaled MADs (1.4826 makes the MAD estimate a normal SD), so one wild sample
# in the baseline neither widens the band (as the SD would) nor hides in it.
MAD_SCALE = 1.4826
SPREAD_MADS = 3.0
# A near-constant baseline (MAD ~ 0: every insert median 230, every target 100% at 20X) would call out
# rounding differences; the band is never narrower than 1% of the median either side.
MIN_RELATIVE_SPREAD = 0.01
MIN_BASELINE = 5  # fewer baseline samples than this: no band is drawn, no sample is called out
MAX_LABELS = 12  # names written into a plot; the list under it names them all


@dataclass(frozen=True)
class KeyMetric:
    key: str
    title: str
    unit: str


KEY_METRICS: tuple[KeyMetric, ...] = (
    KeyMetric("MappedReadsPct", "Mapped reads", "%"),
    KeyMetric("DuplicateReadsPct", "Duplicate reads", "%"),
    KeyMetric("WgsCoverageMean", "Mean genome coverage", "X"),
    KeyMetric("WgsCoverageBases30Pct", "Genome bases ≥ 30X", "%"),
    KeyMetric("CapCoverageMean", "Mean target coverage", "X"),
    KeyMetric("CapCoverageBases20Pct", "Target bases ≥ 20X", "%"),
    KeyMetric("InsertSizeMedian", "Median insert size", "bp"),
    KeyMetric("Q30BasesPct", "Aligned bases ≥ Q30", "%"),
)
# Columns of the runs table besides sample/verdict/rules.
TABLE_METRICS: tuple[str, ...] = (
    "MappedReadsPct",
    "DuplicateReadsPct",
    "WgsCoverageMean",
    "CapCoverageMean",
    "InsertSizeMedian",
)
# What the trends read from history (history.read_history(columns=...)).
HISTORY_COLUMNS: tuple[str, ...] = (
    "sample",
    "inbox_key",
    "qc_verdict",
    "qc_assay",
    *(m.key for m in KEY_METRICS),
)


class IssueKind(StrEnum):
    FAILED = "failed"  # a job failed for good (retries spent, or a permanent exit code)
    STUCK = "stuck"  # active far longer than its tier's timeout, or RUNNABLE with no capacity
    LOST = "lost"  # the executor no longer knows the job


@dataclass(frozen=True)
class RunIssue:
    """A run of the period without a row. `log_url` is a CloudWatch console link or a local log path."""

    run_id: str
    sample: str
    inbox_key: str
    kind: IssueKind
    reason: str
    since: datetime | None = None
    step: str = ""
    log_url: str = ""


@dataclass(frozen=True)
class Baseline:
    n: int
    median: float
    low: float
    high: float


@dataclass(frozen=True)
class Outlier:
    sample: str
    run_id: str
    value: float
    side: str  # "low" / "high"


@dataclass(frozen=True)
class MetricDistribution:
    """One metric of one assay: samples of different assays are never compared with each other."""

    assay: str
    metric: KeyMetric
    values: tuple[tuple[str, str, float, str], ...]  # (sample, run_id, value, verdict)
    baseline: Baseline | None
    outliers: tuple[Outlier, ...]
    svg: str = ""


@dataclass(frozen=True)
class RunLine:
    run_id: str
    sample: str
    inbox_key: str
    finished: datetime | None
    assay: str
    verdict: str
    failed_rules: tuple[str, ...]
    metrics: tuple[float | None, ...]


@dataclass(frozen=True)
class BatchReport:
    title: str
    period_start: datetime
    period_end: datetime
    generated_at: datetime
    runs: tuple[RunLine, ...]
    verdict_counts: dict[str, int]
    issues: tuple[RunIssue, ...]
    distributions: tuple[MetricDistribution, ...]
    throughput: tuple[tuple[datetime, dict[str, int]], ...]  # hour -> verdict -> runs
    rules_versions: tuple[str, ...]
    table_metrics: tuple[str, ...] = TABLE_METRICS
    throughput_svg: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _row_time(row: Mapping[str, Any]) -> datetime | None:
    return parse_time(row.get("written_at")) or parse_time(row.get("written_ts"))


def _rule_text(rule: Any) -> str:
    if not isinstance(rule, Mapping):
        return str(rule)
    op = "<" if rule.get("direction") == "min" else ">"
    value = _number(rule.get("value"))
    shown = "missing" if value is None else f"{value:g}"
    return f"{rule.get('metric')} {shown} {op} {rule.get('threshold'):g} ({rule.get('level')})"


def baseline(values: Sequence[float]) -> Baseline | None:
    """Median and robust spread of the trailing values (pure); None below MIN_BASELINE values."""
    if len(values) < MIN_BASELINE:
        return None
    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values)
    half = max(SPREAD_MADS * MAD_SCALE * mad, MIN_RELATIVE_SPREAD * abs(med), 1e-9)
    return Baseline(len(values), med, med - half, med + half)


def dom_id(text: str) -> str:
    """A string usable in an element id (assay names are free text in the thresholds file)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", text) or "none"
