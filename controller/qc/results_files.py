"""Reading a local RESULTS directory the way the controller writes it, for tools that come after it (the
MultiQC plugin; an operator pointing the batch report at a copy of the results).

Layout (controller/planner.py)::

    RESULTS/reports/<inbox key>.alignstats.json   one alignstats report per input file
    RESULTS/rows/<run_id>.json                    one row per run: provenance + metrics (+ qc_* columns)
    RESULTS/table/results.jsonl                   the combined table, one row per sample, latest run wins

The functions on values (`inbox_key_of`, `latest_rows_by_key`, the composition helpers) are pure; the
two that read files say so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPORT_SUFFIX = ".alignstats.json"
Row = dict[str, Any]


def inbox_key_of(report_path: Path) -> tuple[Path, str] | None:
    """(results root, inbox key) of a report under `<root>/reports/`, or None when it is not under one.

    An inbox key may contain a `reports/` folder of its own, so the root is the outermost `reports`
    directory whose parent holds rows/ or table/ (what the controller writes beside it); without either,
    the innermost `reports` directory (a bare copy of the reports) is taken.
    """
    if not report_path.name.endswith(REPORT_SUFFIX):
        return None
    parts = report_path.parts
    candidates = [i for i in range(len(parts) - 1) if parts[i] == "reports"]
    if not candidates:
        return None

    def split(i: int) -> tuple[Path, str]:
        root = Path(*parts[:i]) if i else Path(".")
        return root, "/".join(parts[i + 1 :])[: -len(REPORT_SUFFIX)]

    for i in candidates:
        root, key = split(i)
        if (root / "rows").is_dir() or (root / "table").is_dir():
            return root, key
    return split(candidates[-1])


def _row_time(row: Mapping[str, Any]) -> str:
    return str(row.get("written_at") or row.get("event_time") or "")


def latest_rows_by_key(rows: Iterable[Mapping[str, Any]]) -> dict[str, Row]:
    """The latest row (by written_at, ISO-8601 UTC so it sorts as text) for each inbox key (pure)."""
    latest: dict[str, Row] = {}
    for row in rows:
        key = row.get("inbox_key")
        if not isinstance(key, str):
            continue
        if key not in latest or _row_time(row) >= _row_time(latest[key]):
            latest[key] = dict(row)
    return latest


def read_rows(results_root: Path) -> list[Row]:
    """Every row found under a results root: rows/**/*.json, then table/results.jsonl (reads files).
    Unreadable or half-written files are skipped: this feeds reports, and one bad object must not hide
    the verdicts of the rest."""
    rows: list[Row] = []
    rows_dir = results_root / "rows"
    if rows_dir.is_dir():
        for path in sorted(rows_dir.rglob("*.json")):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict):
                rows.append(doc)
    table = results_root / "table" / "results.jsonl"
    if table.is_file():
        try:
            lines = table.read_text(encoding="utf-8").splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                rows.append(doc)
    return rows


def _num(report: Mapping[str, Any], key: str) -> float:
    value = report.get(key, 0)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def read_composition(report: Mapping[str, Any]) -> dict[str, float]:
    """Records by mapping state; the parts add up to YieldReads (ALIGNSTATS.md §4.2: duplicates are a
    subset of mapped records)."""
    mapped, dups = _num(report, "MappedReads"), _num(report, "DuplicateReads")
    return {
        "mapped_not_duplicate": max(mapped - dups, 0.0),
        "duplicate": dups,
        "unmapped": _num(report, "UnmappedReads"),
    }


def pair_composition(report: Mapping[str, Any]) -> dict[str, float]:
    """Read-2 records by the mapping of the pair (§4.4); the parts add up to the read-2 record count."""
    pairs, same = _num(report, "TotalPairs"), _num(report, "TotalSameChrPairs")
    return {
        "same_chromosome": same,
        "different_chromosomes": max(pairs - same, 0.0),
        "read1_only_mapped": _num(report, "R1UnpairedReads"),
        "read2_only_mapped": _num(report, "R2UnpairedReads"),
        "neither_mapped": _num(report, "UnpairedReads"),
    }


def base_composition(report: Mapping[str, Any]) -> dict[str, float]:
    """Bases by what became of them; the parts add up to YieldBases. Aligned and soft-clipped bases are
    counted on primary/supplementary non-QC-fail records only, so the bases of secondary and QC-fail
    records are their own part."""
    mapped, aligned = _num(report, "MappedBases"), _num(report, "AlignedBases")
    clipped = _num(report, "SoftClippedBases")
    return {
        "aligned": aligned,
        "soft_clipped": clipped,
        "secondary_or_qcfail": max(mapped - aligned - clipped, 0.0),
        "unmapped": _num(report, "UnmappedBases"),
    }


def quality_composition(report: Mapping[str, Any], read: str = "") -> dict[str, float]:
    """Aligned bases by base quality (Q20/Q30 count aligned bases, §4.2); `read` is "", "R1" or "R2"."""
    aligned, q20, q30 = (_num(report, f"{read}{k}") for k in ("AlignedBases", "Q20Bases", "Q30Bases"))
    return {"q30": q30, "q20_to_q30": max(q20 - q30, 0.0), "below_q20": max(aligned - q20, 0.0)}


def cumulative_coverage(report: Mapping[str, Any], prefix: str) -> dict[int, float]:
    """% of bases (prefix "Wgs": genome; "Cap": targets) covered at >= each threshold, or {} when the
    report has no such section."""
    from core.qc import COVERAGE_THRESHOLDS

    out: dict[int, float] = {}
    for t in COVERAGE_THRESHOLDS:
        key = f"{prefix}CoverageBases{t}Pct"
        if key in report:
            out[t] = _num(report, key)
    return out
