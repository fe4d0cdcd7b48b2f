"""QC verdicts: a versioned thresholds file (TOML) of rules per assay, applied to one alignstats report.

The file (shipped defaults: core/thresholds.toml, package data; config/thresholds.toml links to it)::

    version = "2026.12.1"          # any string; recorded with every verdict
    default_assay = "wgs"          # for inbox keys no assay's prefix matches

    [[assay]]
    name = "exome"
    prefixes = ["exome/", "wes/"]  # inbox key prefixes; the longest match over all assays wins

    [[assay.rule]]
    metric = "CapCoverageMean"     # any alignstats report key (ALIGNSTATS.md §3-4)
    min = { warn = 80, fail = 50 } # below 80 warns, below 50 fails
    # max = { warn = .., fail = .. } for metrics that must stay low; either level may be left out

Everything here is pure; core.qc_file reads and checks a thresholds file (`load_thresholds`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------------------------------------------------
# The metric names of an alignstats v0.11 report (ALIGNSTATS.md §3: 223 keys in a fixed order). Built from
# the spec's structure rather than copied from a report so that a WGS-only or capture-only report does
# not narrow what a rule may name; tests check it against the golden full report key for key.

_READ_METRICS = (
    "YieldReads YieldBases UnmappedReads UnmappedReadsPct UnmappedBases UnmappedBasesPct "
    "{dup}MappedReads MappedReadsPct MappedBases MappedBasesPct AlignedBases AlignedBasesPct "
    "MatchedBases MatchedBasesPct MismatchedBases MismatchedBasesPct InsertedBases InsertedBasesPct "
    "DeletedBases DeletedBasesPct SoftClippedReads SoftClippedReadsPct SoftClippedBases SoftClippedBasesPct "
    "PerfectReads PerfectReadsPct PerfectBases PerfectBasesPct Q20Bases Q20BasesPct Q30Bases Q30BasesPct"
)
_DUP = "DuplicateReads DuplicateReadsPct DuplicateBases DuplicateBasesPct "
_STATS = ("Mean", "Median", "Mode", "StandardDeviation")
_THRESHOLDS = (1, 10, 15, 20, 30, 40, 50, 60, 70, 100, 500, 1000)


def _words(text: str) -> list[str]:
    return text.split()


def _coverage_keys(prefix: str) -> list[str]:
    keys = [
        f"{prefix}{k}"
        for k in _words(
            "TotalReads CovDuplicateReads CovDuplicateReadsPct AlignedReads AlignedReadsPct ReadsPaired "
            "ReadsPairedWithMates CoverageMean CoverageMedian CoverageStandardDeviation "
            "ExpectedAlignedReads CalculatedAlignedReads"
        )
    ]
    for t in _THRESHOLDS:
        keys += [f"{prefix}CoverageBases{t}", f"{prefix}CoverageBases{t}Pct"]
    return [*keys, f"{prefix}FilteredOverlapBases", f"{prefix}FilteredLowBaseQualityBases"]


def _report_keys() -> tuple[str, ...]:
    keys = ["InputFileName", "InputFileSize", "TotalRecords", "UnfilteredRecords", "UnfilteredRecordsPct"]
    keys += ["FilteredRecords", "FilteredRecordsPct"]
    keys += _words(_READ_METRICS.format(dup=_DUP))
    for read in ("R1", "R2"):
        keys += [read + k for k in _words(_READ_METRICS.format(dup=""))]
    for read in ("", "R1", "R2"):
        keys += [f"{read}AlignedReadLength{s}" for s in _STATS]
    keys += _words(
        "TotalPairs TotalSameChrPairs TotalSameChrPairsPct UnpairedReads UnpairedReadsPct R1UnpairedReads "
        "R1UnpairedReadsPct R2UnpairedReads R2UnpairedReadsPct ChimericReadPairPct"
    )
    keys += [f"InsertSize{s}" for s in _STATS]
    keys += _coverage_keys("Wgs")
    keys += _coverage_keys("Cap")
    keys += _words(
        "CapBufferAlignedReads CapBufferAlignedReadsPct CapTargetAlignedReads CapTargetAlignedReadsPct "
        "CapTargetsHit CapTargetsHitPct CapTargetBuffersHit CapTargetBuffersHitPct CapTotalTargets "
        "CapHighCoverageNonTargetHits CapBasesOnTarget CapBasesOnBuffer CapReadsOnTargetOrBuffer "
        "CapReadsOnTargetOrBufferPct"
    )
    return tuple(keys)


REPORT_KEYS: tuple[str, ...] = _report_keys()
# InputFileName is text; everything else is a number a rule can test.
METRICS: frozenset[str] = frozenset(REPORT_KEYS) - {"InputFileName"}
COVERAGE_THRESHOLDS: tuple[int, ...] = _THRESHOLDS


class Level(StrEnum):
    """A verdict, ordered: the worst rule decides a sample's verdict."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Level.PASS: 0, Level.WARN: 1, Level.FAIL: 2}


class Direction(StrEnum):
    """`min`: the value must not drop below the threshold; `max`: it must not rise above it."""

    MIN = "min"
    MAX = "max"


@dataclass(frozen=True)
class Bound:
    direction: Direction
    warn: float | None
    fail: float | None

    def level_for(self, value: float) -> tuple[Level, float | None]:
        """The worst level this value breaches and that level's threshold (equality passes)."""
        low = self.direction is Direction.MIN
        for level, threshold in ((Level.FAIL, self.fail), (Level.WARN, self.warn)):
            if threshold is not None and (value < threshold if low else value > threshold):
                return level, threshold
        return Level.PASS, None

    @property
    def strongest(self) -> tuple[Level, float]:
        if self.fail is not None:
            return Level.FAIL, self.fail
        assert self.warn is not None  # parse_thresholds guarantees one of the two
        return Level.WARN, self.warn


@dataclass(frozen=True)
class Rule:
    metric: str
    bounds: tuple[Bound, ...]
    line: int  # where the rule's table starts in its file, for messages


@dataclass(frozen=True)
class Assay:
    name: str
    prefixes: tuple[str, ...]
    rules: tuple[Rule, ...]
    description: str = ""


@dataclass(frozen=True)
class FailedRule:
    """One breached bound. `value` is None when the report lacks the metric (e.g. a capture rule on a
    report made without a target BED): that counts at the rule's strongest level, so a capture sample run
    without targets never passes silently."""

    metric: str
    value: float | None
    threshold: float
    level: Level
    direction: Direction

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "level": str(self.level),
            "direction": str(self.direction),
        }

    def describe(self) -> str:
        """`MappedReadsPct 85.2 < 90 (fail)`: the form a person reads in a table cell or a log line."""
        op = "<" if self.direction is Direction.MIN else ">"
        shown = "missing" if self.value is None else f"{self.value:g}"
        return f"{self.metric} {shown} {op} {self.threshold:g} ({self.level})"


@dataclass(frozen=True)
class Verdict:
    level: Level
    failed: tuple[FailedRule, ...]
    assay: str
    rules_version: str
    rules_sha256: str

    def row_columns(self) -> dict[str, Any]:
        """The columns the finish stage adds to a sample's row (rows/<run_id>.json, the results table)."""
        return {
            "qc_verdict": str(self.level),
            "qc_assay": self.assay,
            "qc_failed_rules": [f.to_dict() for f in self.failed],
            "qc_rules_version": self.rules_version,
            "qc_rules_sha256": self.rules_sha256,
        }


@dataclass(frozen=True)
class Thresholds:
    version: str
    sha256: str
    path: str
    default_assay: str
    assays: tuple[Assay, ...]

    def assay(self, name: str) -> Assay:
        for assay in self.assays:
            if assay.name == name:
                return assay
        raise KeyError(name)

    def assay_for(self, inbox_key: str) -> Assay:
        """The assay whose prefix is the longest match of the key (as `[[pipeline.prefix]]` does), else
        the default assay."""
        best: tuple[int, Assay] | None = None
        for assay in self.assays:
            for prefix in assay.prefixes:
                if inbox_key.startswith(prefix) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), assay)
        return best[1] if best else self.assay(self.default_assay)

    def verdict(self, report: Mapping[str, Any], inbox_key: str) -> Verdict:
        """The verdict for a report that came from this inbox key."""
        return evaluate(report, self.assay_for(inbox_key), self.version, self.sha256)


def evaluate(report: Mapping[str, Any], assay: Assay, rules_version: str, rules_sha256: str) -> Verdict:
    """Apply an assay's rules to one report (pure). Failed rules keep the file's rule order."""
    failed: list[FailedRule] = []
    for rule in assay.rules:
        raw = report.get(rule.metric)
        value = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None
        for bound in rule.bounds:
            if value is None or math.isnan(value):
                level, threshold = bound.strongest
                failed.append(FailedRule(rule.metric, None, threshold, level, bound.direction))
                continue
            level, hit = bound.level_for(value)
            if hit is not None:
                failed.append(FailedRule(rule.metric, value, hit, level, bound.direction))
    worst = max((f.level for f in failed), key=lambda lv: lv.rank, default=Level.PASS)
    return Verdict(worst, tuple(failed), assay.name, rules_version, rules_sha256)


def shipped_thresholds_path() -> Path:
    """The shipped defaults: package data beside this module, so an installed package finds them too
    (config/thresholds.toml in a checkout is a link to the same file)."""
    return Path(__file__).resolve().parent / "thresholds.toml"


def iter_rules(thresholds: Thresholds) -> Iterator[tuple[Assay, Rule]]:
    for assay in thresholds.assays:
        for rule in assay.rules:
            yield assay, rule
