"""MultiQC plugin: `multiqc RESULTS_DIR` shows alignbatch's alignstats reports.

Registered by two entry points (setup.cfg, docs/qc.md):

    multiqc.modules.v1:  alignbatch = controller.qc.multiqc_plugin:MultiqcModule
    multiqc.hooks.v1:    config_loaded = controller.qc.multiqc_plugin:add_search_patterns

The hook adds the search pattern `*.alignstats.json` (MultiQC keeps patterns in config, and a plugin
cannot ship them in MultiQC's own search_patterns.yaml); the module then parses each report, looks for
that sample's row beside it (rows/*.json or table/results.jsonl) to show its qc_verdict, and adds General
Statistics columns, a cumulative coverage plot, read/pair/base composition bar plots and an R1 vs R2 table.

Sample names: the inbox key without the report suffix and a .bam/.cram/.sam extension, then MultiQC's own
cleaning, which keeps the file's base name (as every MultiQC module does). Two inbox keys with the same
base name under different prefixes would collide: the first is kept with a warning, and
`multiqc --dirs RESULTS` (MultiQC's prepend_dirs) tells them apart.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from multiqc import config
from multiqc.base_module import BaseMultiqcModule, ModuleNoSamplesFound
from multiqc.plots import bargraph, linegraph, table

from controller.qc import results_files as rf

log = logging.getLogger(__name__)

SEARCH_KEY = "alignbatch/report"
_SAMPLE_EXTS = (".bam", ".cram", ".sam")


def add_search_patterns() -> None:
    """`config_loaded` hook: find reports by name; a user's own `sp: alignbatch/report` wins."""
    config.sp.setdefault(SEARCH_KEY, {"fn": f"*{rf.REPORT_SUFFIX}"})


def _sample_from_key(key: str) -> str:
    for ext in _SAMPLE_EXTS:
        if key.endswith(ext):
            return key[: -len(ext)]
    return key


# Column order and display of the General Statistics table: (report key, title, description, format).
_GENERAL = (
    ("MappedReadsPct", "Mapped", "% of records mapped (alignstats MappedReadsPct)", "pct"),
    ("DuplicateReadsPct", "Dups", "% of aligned non-secondary reads marked duplicate", "pct"),
    ("WgsCoverageMean", "Mean cov", "Mean genome depth (WgsCoverageMean)", "x"),
    ("WgsCoverageBases30Pct", "≥30X", "% of genome bases at depth ≥ 30", "pct"),
    ("CapCoverageMean", "Target cov", "Mean target depth (CapCoverageMean)", "x"),
    ("CapCoverageBases30Pct", "Target ≥30X", "% of target bases at depth ≥ 30", "pct"),
    ("InsertSizeMedian", "Insert", "Median insert size (bp)", "bp"),
    ("Q30BasesPct", "≥Q30", "% of aligned bases at ≥ Q30", "pct_hidden"),
    ("YieldReads", "Records", "Records in the file (YieldReads)", "count_hidden"),
)


def _general_headers() -> dict[str, dict[str, Any]]:
    headers: dict[str, dict[str, Any]] = {}
    for key, title, description, fmt in _GENERAL:
        h: dict[str, Any] = {"title": title, "description": description, "hidden": fmt.endswith("_hidden")}
        if fmt.startswith("pct"):
            h.update(min=0, max=100, suffix="%", scale="RdYlGn" if key != "DuplicateReadsPct" else "OrRd")
        elif fmt == "x":
            h.update(min=0, suffix="X", format="{:,.1f}", scale="Blues")
        elif fmt == "bp":
            h.update(min=0, suffix=" bp", format="{:,.0f}", scale="Purples")
        else:
            h.update(min=0, format="{:,.0f}", scale="Greens")
        headers[key] = h
    headers["qc_verdict"] = {
        "title": "QC",
        "description": "alignbatch verdict from the thresholds file (pass / warn / fail)",
        "scale": False,
    }
    headers["qc_failed_rules"] = {
        "title": "Failed rules",
        "description": "The rules a warn/fail sample breached",
        "scale": False,
        "hidden": True,
    }
    return headers


def _failed_rules_text(value: Any) -> str:
    """The row keeps failed rules as a list of dicts (or its JSON, in CSV-derived rows)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if not isinstance(value, list):
        return ""
    parts = []
    for item in value:
        if isinstance(item, dict):
            op = "<" if item.get("direction") == "min" else ">"
            parts.append(f"{item.get('metric')} {item.get('value')} {op} {item.get('threshold')}")
    return "; ".join(parts)


class MultiqcModule(BaseMultiqcModule):
    def __init__(self) -> None:
        super().__init__(
            name="alignbatch",
            anchor="alignbatch",
            href="https://github.com/jfarek/alignstats",
            info="alignment QC: alignstats-compatible reports from alignbatch, with QC verdicts.",
        )
        self.reports: dict[str, dict[str, Any]] = {}
        self.verdicts: dict[str, dict[str, Any]] = {}
        rows_cache: dict[Path, dict[str, rf.Row]] = {}

        for f in self.find_log_files(SEARCH_KEY, filehandles=False):
            try:
                report = json.loads(f["f"])
            except ValueError:
                log.warning("alignbatch: %s/%s is not JSON; skipped", f["root"], f["fn"])
                continue
            if not isinstance(report, dict) or "TotalRecords" not in report:
                continue
            path = Path(f["root"]) / f["fn"]
            located = rf.inbox_key_of(path)
            key = located[1] if located else f["fn"][: -len(rf.REPORT_SUFFIX)]
            s_name = self.clean_s_name(_sample_from_key(key), f)
            if s_name in self.reports:
                log.warning(
                    "alignbatch: two reports are both sample %s (%s); keeping the first - run multiqc --dirs",
                    s_name,
                    key,
                )
                continue
            self.add_data_source(f, s_name)
            self.reports[s_name] = report
            if located:
                root = located[0]
                if root not in rows_cache:
                    rows_cache[root] = rf.latest_rows_by_key(rf.read_rows(root))
                row = rows_cache[root].get(key)
                if row and row.get("qc_verdict"):
                    self.verdicts[s_name] = row

        self.reports = self.ignore_samples(self.reports)
        if not self.reports:
            raise ModuleNoSamplesFound
        log.info("Found %d alignstats reports", len(self.reports))
        # alignstats reports carry no version (ALIGNSTATS.md §3); the row's engine_version does.
        versions = {str(r.get("engine_version")) for r in self.verdicts.values() if r.get("engine_version")}
        for version in sorted(versions) or [None]:
            self.add_software_version(version)

        self.write_data_file(self.reports, "multiqc_alignbatch")
        self._general_stats()
        self._coverage_section()
        self._composition_sections()
        self._read_pair_section()

    def _general_stats(self) -> None:
        data: dict[str, dict[str, Any]] = {}
        for s_name, report in self.reports.items():
            cols = {k: report[k] for k, *_ in _GENERAL if k in report}
            row = self.verdicts.get(s_name)
            if row:
                cols["qc_verdict"] = str(row["qc_verdict"])
                cols["qc_failed_rules"] = _failed_rules_text(row.get("qc_failed_rules"))
            data[s_name] = cols
        self.general_stats_addcols(data, _general_headers())

    def _coverage_section(self) -> None:
        datasets, labels = [], []
        for prefix, label in (("Wgs", "Genome"), ("Cap", "Targets")):
            series = {s: rf.cumulative_coverage(r, prefix) for s, r in self.reports.items()}
            series = {s: v for s, v in series.items() if v}
            if series:
                datasets.append(series)
                labels.append({"name": label, "ylab": f"% of {label.lower()} bases"})
                self.write_data_file(series, f"multiqc_alignbatch_cumcov_{prefix.lower()}")
        if not datasets:
            return
        self.add_section(
            name="Cumulative coverage",
            anchor="alignbatch-cumcov",
            description="Percentage of bases covered at or above each depth (alignstats CoverageBases*Pct).",
            plot=linegraph.plot(
                datasets,
                {
                    "id": "alignbatch_cumcov",
                    "title": "alignbatch: cumulative coverage",
                    "xlab": "Depth (X)",
                    "ylab": "% of bases",
                    "ymin": 0,
                    "ymax": 100,
                    "xlog": True,
                    "data_labels": labels,
                },
            ),
        )

    def _composition_sections(self) -> None:
        sections = (
            (
                "Read composition",
                "reads",
                rf.read_composition,
                {"mapped_not_duplicate": "Mapped", "duplicate": "Duplicate", "unmapped": "Unmapped"},
                "Records by mapping state (MappedReads - DuplicateReads, DuplicateReads, UnmappedReads).",
            ),
            (
                "Pair composition",
                "pairs",
                rf.pair_composition,
                {
                    "same_chromosome": "Both mapped, same chromosome",
                    "different_chromosomes": "Both mapped, different chromosomes",
                    "read1_only_mapped": "Only read 1 mapped",
                    "read2_only_mapped": "Only read 2 mapped",
                    "neither_mapped": "Neither mapped",
                },
                "Read-2 records by the mapping of their pair (TotalPairs, TotalSameChrPairs, Unpaired).",
            ),
            (
                "Base composition",
                "bases",
                rf.base_composition,
                {
                    "aligned": "Aligned",
                    "soft_clipped": "Soft-clipped",
                    "secondary_or_qcfail": "Secondary / QC-fail",
                    "unmapped": "Unmapped",
                },
                "Bases by what became of them; the parts add up to YieldBases.",
            ),
            (
                "Base quality",
                "quality",
                rf.quality_composition,
                {"q30": "≥ Q30", "q20_to_q30": "Q20-Q29", "below_q20": "< Q20"},
                "Aligned bases by base quality (Q30Bases, Q20Bases, AlignedBases).",
            ),
        )
        for name, anchor, fn, cats, description in sections:
            data = {s: fn(r) for s, r in self.reports.items()}
            data = {s: v for s, v in data.items() if any(v.values())}
            if not data:
                continue
            self.write_data_file(data, f"multiqc_alignbatch_{anchor}")
            self.add_section(
                name=name,
                anchor=f"alignbatch-{anchor}",
                description=description,
                plot=bargraph.plot(
                    data,
                    {k: {"name": v} for k, v in cats.items()},
                    {"id": f"alignbatch_{anchor}", "title": f"alignbatch: {name.lower()}", "ylab": "Count"},
                ),
            )

    def _read_pair_section(self) -> None:
        """R1 against R2, side by side: a read-2 problem (a failing second read, adapter trouble) shows
        as a gap between the columns."""
        metrics = (
            ("MappedReadsPct", "Mapped %"),
            ("Q30BasesPct", "≥Q30 %"),
            ("MismatchedBasesPct", "Mismatch %"),
            ("SoftClippedBasesPct", "Soft-clip %"),
            ("AlignedReadLengthMean", "Aligned length"),
        )
        data: dict[str, dict[str, Any]] = {}
        headers: dict[str, dict[str, Any]] = {}
        for key, title in metrics:
            for read in ("R1", "R2"):
                headers[f"{read}{key}"] = {"title": f"{read} {title}", "format": "{:,.2f}", "scale": False}
        for s_name, report in self.reports.items():
            if not report.get("R2YieldReads"):
                continue  # single-end: nothing to compare
            data[s_name] = {h: report[h] for h in headers if h in report}
        if not data:
            return
        self.write_data_file(data, "multiqc_alignbatch_r1_r2")
        quality = {
            s: {
                f"{read}_{k}": v
                for read in ("R1", "R2")
                for k, v in rf.quality_composition(self.reports[s], read).items()
            }
            for s in data
        }
        self.add_section(
            name="Read 1 vs read 2",
            anchor="alignbatch-r1-r2",
            description="The same alignstats metrics for first and second reads of each pair.",
            plot=table.plot(data, headers, {"id": "alignbatch_r1_r2_table", "title": "alignbatch: R1 vs R2"}),
        )
        self.add_section(
            name="Read 1 vs read 2: base quality",
            anchor="alignbatch-r1-r2-quality",
            description="Aligned bases at ≥ Q30 for each read of the pair, as a share of its aligned bases.",
            plot=bargraph.plot(
                [
                    {s: {k: v for k, v in q.items() if k.startswith(r)} for s, q in quality.items()}
                    for r in ("R1", "R2")
                ],
                [
                    {
                        f"{r}_q30": {"name": "≥ Q30"},
                        f"{r}_q20_to_q30": {"name": "Q20-Q29"},
                        f"{r}_below_q20": {"name": "< Q20"},
                    }
                    for r in ("R1", "R2")
                ],
                {
                    "id": "alignbatch_r1_r2_quality",
                    "title": "alignbatch: base quality, R1 vs R2",
                    "cpswitch_c_active": False,
                    "data_labels": [{"name": "Read 1"}, {"name": "Read 2"}],
                },
            ),
        )
