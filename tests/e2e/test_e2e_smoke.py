"""The happy path on the production route: stacks → notification → controller → Batch → results."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import metric_sum
from tests.e2e.pipeline import Pipeline


def test_one_object_with_and_one_without_index(pipeline: Pipeline, data_dir: Path) -> None:
    pipeline.controller.start().wait_ready()
    with_index = pipeline.put("smoke/with.bam", (data_dir / "i_edge.bam").read_bytes())
    pipeline.put("smoke/with.bam.bai", (data_dir / "i_edge.bam.bai").read_bytes())
    without = pipeline.put("smoke/without.bam", (data_dir / "i_edge.bam").read_bytes())
    pipeline.wait_settled([with_index, without], timeout=120)
    pipeline.assert_exactly_once([with_index, without])
    metrics = pipeline.controller.metrics()
    assert metric_sum(metrics, "alignbatch_runs_total", outcome="succeeded") == 2
    assert len(pipeline.results_table()) == 2
