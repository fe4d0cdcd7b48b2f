"""The summary row's schema, in one place: its provenance columns (name, type, who writes them) in table
order, and the order the planner passes its part to the summary step.

A row is these provenance fields followed by every metric of the alignstats report in report order. The
planner passes its fields as `--meta KEY=VALUE` (worker/summary.py checks and types them), the summary
step adds the engine, its own job id and the time, the controller's finish stage adds the QC verdict
(core.qc.Verdict.row_columns), and the results table puts the columns below first. Keys outside the
schema are passed through (a newer planner's, or a report metric).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

V = TypeVar("V")


@dataclass(frozen=True)
class Column:
    name: str
    type: type  # str, int, float or list: what the value is in the row JSON
    # planner: a --meta of the summary step; summary: the tool's own; controller: added by the finish stage
    origin: Literal["planner", "summary", "controller"]
    in_table: bool = True  # among the results table's leading columns


COLUMNS: tuple[Column, ...] = (
    Column("sample", str, "planner"),
    Column("inbox_key", str, "planner"),
    Column("run_id", str, "planner"),
    Column("input_uri", str, "planner"),
    Column("input_etag", str, "planner"),
    Column("input_version_id", str, "planner"),
    Column("input_size", int, "planner"),
    Column("report_uri", str, "planner"),
    Column("engine", str, "summary"),
    Column("engine_version", str, "summary"),
    Column("pipeline_version", str, "planner"),
    Column("alignstats_args", str, "planner"),
    Column("target_bed", str, "planner"),
    Column("reference_fasta", str, "planner"),
    # A large file split across Batch jobs (#17): into how many shards (1: one job), and the shard array
    Column("shards", int, "planner"),
    Column("job_id_index", str, "planner"),
    Column("job_id_shard", str, "planner", in_table=False),
    Column("job_id_alignstats", str, "planner"),
    Column("job_id_summary", str, "summary"),
    Column("event_time", str, "planner"),
    # S3's event sequencer of the object's version: which of two versions of a key is newer
    Column("s3_sequencer", str, "planner"),
    Column("written_at", str, "summary"),
    # The QC verdict (core.qc): pass/warn/fail, the assay its rules came from, every breached rule as
    # {metric, value, threshold, level, direction} (JSON in a CSV cell), and which rules file decided it.
    Column("qc_verdict", str, "controller"),
    Column("qc_assay", str, "controller"),
    Column("qc_failed_rules", list, "controller"),
    Column("qc_rules_version", str, "controller"),
    Column("qc_rules_sha256", str, "controller"),
    Column("index_uri", str, "planner", in_table=False),
    # Where it ran and what it cost (controller/run_usage.py, controller/cost.py, #18): submissions and
    # Spot reclaims over all steps; the alignstats step's queue, compute environment and capacity (spot,
    # on_demand, local); requested vCPU- and GiB-seconds over every attempt, priced by [cost]; and the
    # same per step (JSON in a CSV cell).
    Column("attempts", int, "controller"),
    Column("reclaims", int, "controller"),
    Column("queue", str, "controller"),
    Column("compute_environment", str, "controller"),
    Column("capacity", str, "controller"),
    Column("vcpu_seconds", float, "controller"),
    Column("memory_gib_seconds", float, "controller"),
    Column("est_cost_usd", float, "controller"),
    Column("steps", list, "controller", in_table=False),
)
BY_NAME: Mapping[str, Column] = {c.name: c for c in COLUMNS}

# The results table's leading columns, in order.
PROVENANCE_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.in_table)

# The columns the finish stage adds (the summary step's row does not have them yet).
CONTROLLER_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.origin == "controller")

# The order the planner's fields appear in a row (they are passed, and kept, in this order).
META_ORDER: tuple[str, ...] = (
    "run_id",
    "sample",
    "inbox_key",
    "input_uri",
    "input_etag",
    "input_version_id",
    "input_size",
    "report_uri",
    "pipeline_version",
    "alignstats_args",
    "target_bed",
    "reference_fasta",
    "event_time",
    "s3_sequencer",
    "job_id_alignstats",
    "job_id_index",
    "index_uri",
    "job_id_shard",
    "shards",
)


def planner_meta(**values: V) -> dict[str, V]:
    """The planner's fields in row order; a name outside the schema is a bug (KeyError)."""
    unknown = sorted(k for k in values if k not in META_ORDER)
    if unknown:
        raise KeyError(f"not planner columns of the summary row: {', '.join(unknown)}")
    return {k: values[k] for k in META_ORDER if k in values}


def typed(name: str, value: str) -> object:
    """A --meta value as the row holds it (an int column's digits become an int; anything else as is)."""
    column = BY_NAME.get(name)
    if column is not None and column.type is int and value.isdigit():
        return int(value)
    return value
