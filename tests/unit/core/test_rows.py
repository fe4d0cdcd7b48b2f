"""The summary row's schema: one list of columns that the planner, the summary tool and the table use."""

from __future__ import annotations

import pytest

from controller.config import DEFAULT_TIERS, PipelineOptions
from controller.model import InputObject
from controller.planner import PlanContext, plan_run
from controller.results_table import columns
from core import rows
from worker.summary import build_row, parse_meta


def test_schema_is_consistent() -> None:
    assert len(rows.BY_NAME) == len(rows.COLUMNS)
    assert {rows.BY_NAME[k].origin for k in rows.META_ORDER} == {"planner"}
    assert rows.PROVENANCE_COLUMNS[:3] == ("sample", "inbox_key", "run_id")
    assert "index_uri" not in rows.PROVENANCE_COLUMNS
    assert rows.CONTROLLER_COLUMNS == (
        "qc_verdict", "qc_assay", "qc_failed_rules", "qc_rules_version", "qc_rules_sha256",
        # where it ran and what it cost (#18)
        "attempts", "reclaims", "queue", "compute_environment", "capacity",
        "vcpu_seconds", "memory_gib_seconds", "est_cost_usd", "steps",
    )  # fmt: skip
    with pytest.raises(KeyError, match="bogus"):
        rows.planner_meta(bogus="x")


def test_planner_meta_reaches_the_row_in_schema_order_and_types() -> None:
    ctx = PlanContext("s3://inbox", "s3://results", PipelineOptions(), DEFAULT_TIERS, "0.1.0")
    plan = plan_run(InputObject("inbox", "x.bam", 42, "e1", None, False), ctx)
    argv = plan.job("summary").worker.argv({"index": "J1", "alignstats": "J2"})
    meta = parse_meta([argv[i + 1] for i, a in enumerate(argv) if a == "--meta"])
    # every planner field but the shard array's id (#17: a file split into shards has one)
    assert tuple(meta) == tuple(k for k in rows.META_ORDER if k != "job_id_shard")
    row = build_row({"TotalRecords": 1}, meta)
    assert row["input_size"] == 42 and row["job_id_index"] == "J1"
    assert set(rows.PROVENANCE_COLUMNS) <= set(row) | {"job_id_summary", *rows.CONTROLLER_COLUMNS}
    assert columns([row])[: len(rows.PROVENANCE_COLUMNS)] == list(rows.PROVENANCE_COLUMNS)
