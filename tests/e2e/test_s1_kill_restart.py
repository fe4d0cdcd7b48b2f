"""Scenario 1: the controller is SIGKILLed at random moments while objects arrive at once, and restarted.

Each kill lands somewhere in receive → commit → intent → SubmitJob → record → delete → reconcile; after
every restart the ledger and Batch must agree so that no step is submitted twice and no object is lost.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.pipeline import Figures, Pipeline
from tests.support.workload import drop_bams, rng, seed


def _kill_restart_cycle(
    pipeline: Pipeline, figures: Figures, data_dir: Path, objects: int, kills: int, timeout: float
) -> None:
    random = rng()
    figures.extra["seed"] = seed()
    # A message received by a controller that is then SIGKILLed stays invisible for the visibility
    # timeout (900 s as deployed) before it is delivered again; 30 s keeps the test short, the path is
    # the same (the controller extends in-flight messages every 10 s). maxReceiveCount stays at the
    # deployed 5: every kill can add a receive to the messages in flight.
    pipeline.controller.env["ALIGNBATCH_QUEUE_VISIBILITY_TIMEOUT"] = "30"
    pipeline.controller.start().wait_ready()
    began = time.monotonic()
    keys = drop_bams(pipeline, data_dir, objects, prefix="kill")
    figures.objects_dropped = len(keys)
    for _ in range(kills):
        time.sleep(random.uniform(0.5, 4.0))
        pipeline.controller.kill()
        figures.kills = pipeline.controller.kills
        time.sleep(random.uniform(0.0, 1.0))
        pipeline.controller.start().wait_ready()
    pipeline.wait_settled(keys, timeout=timeout)
    figures.drain_seconds = time.monotonic() - began
    figures.kills = pipeline.controller.kills
    figures.duplicate_jobs = len(pipeline.duplicate_batch_jobs())
    pipeline.assert_exactly_once(keys)
    table = pipeline.results_table()
    assert len(table) == len(keys), f"results table has {len(table)} rows for {len(keys)} objects"


def test_sigkill_twice_while_12_objects_arrive(pipeline: Pipeline, figures: Figures, data_dir: Path) -> None:
    _kill_restart_cycle(pipeline, figures, data_dir, objects=12, kills=2, timeout=240)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_sigkill_five_times_while_200_objects_arrive(
    pipeline: Pipeline, figures: Figures, data_dir: Path
) -> None:
    pipeline.mb.configure_jobs(max_concurrent=6)
    _kill_restart_cycle(pipeline, figures, data_dir, objects=200, kills=5, timeout=1800)
