"""Scenario 3: 429 on 30% of SubmitJob/DescribeJobs calls and 503 SlowDown on 10% of S3 calls.

Faults hit the controller (Batch and S3) and the jobs (S3) alike; botocore's retry modes and the
controller's own back-off must carry every object through without a lost or doubled job, and the
controller must count what it was throttled on.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.harness import metric_sum
from tests.support.pipeline import Figures, Pipeline
from tests.support.workload import drop_bams, seed


def test_throttled_batch_and_slow_s3(pipeline: Pipeline, figures: Figures, data_dir: Path) -> None:
    mb = pipeline.mb
    # The random rules share one seeded RNG, but how many calls each API gets depends on timing, so a
    # run with few DescribeJobs calls could see none throttled. The `limit: 1` rules make the first call
    # of each kind certain to be faulted; the random ones then carry the rate.
    mb.set_faults(
        [
            {"api": "batch:submitjob", "kind": "throttle", "limit": 1, "channel": "controller"},
            {"api": "batch:describejobs", "kind": "throttle", "limit": 1, "channel": "controller"},
            {"api": "s3:*", "kind": "slowdown", "limit": 1, "channel": "jobs"},
            {"api": "batch:submitjob", "kind": "throttle", "rate": 0.3, "channel": "controller"},
            {"api": "batch:describejobs", "kind": "throttle", "rate": 0.3, "channel": "controller"},
            {"api": "s3:*", "kind": "slowdown", "rate": 0.1, "channel": "controller"},
            {"api": "s3:*", "kind": "slowdown", "rate": 0.1, "channel": "jobs"},
        ],
        seed=seed(),
    )
    figures.extra["seed"] = seed()
    pipeline.controller.start().wait_ready()
    began = time.monotonic()
    keys = drop_bams(pipeline, data_dir, 6, prefix="throttle", with_index_every=1)
    figures.objects_dropped = len(keys)
    pipeline.wait_settled(keys, timeout=240)
    figures.drain_seconds = time.monotonic() - began
    # First: it waits for the pass that finished the last run to write the table, after which that
    # pass's counters are final too, so the /metrics read below sees every run.
    pipeline.assert_ledger_table_metrics_agree()
    figures.add_faults(mb.injected_by_kind())
    metrics = pipeline.controller.metrics()
    throttled = metric_sum(metrics, "alignbatch_throttled_calls_total")
    figures.throttled_calls_seen = throttled
    figures.duplicate_jobs = len(pipeline.duplicate_batch_jobs())
    injected = {(r["channel"], r["kind"], r["api"]): r["count"] for r in mb.faults()["injected"]}
    figures.extra["injected_by_api"] = {f"{c}/{a}": n for (c, _k, a), n in injected.items()}

    pipeline.assert_exactly_once(keys)
    assert injected.get(("controller", "throttle", "batch:submitjob"), 0) > 0
    assert injected.get(("controller", "throttle", "batch:describejobs"), 0) > 0
    assert sum(n for (c, k, _a), n in injected.items() if k == "slowdown" and c == "jobs") > 0
    # The controller saw (and counted) the throttling it rode through.
    assert throttled > 0
    assert metric_sum(metrics, "alignbatch_runs_total", outcome="succeeded") == len(keys)
