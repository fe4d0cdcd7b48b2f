"""Scenario 10: a backfill goes out as array jobs, and a child killed once is retried alone (#18).

Objects already in the inbox are backfilled with `alignbatch-controller submit` while the controller is
stopped; when it starts, every step of the whole backlog is one array job (one SubmitJob each, N_TO_N
between them) whose children moto's Batch runs as real processes. One index child's download is held and
its host "reclaimed" (TerminateJob with a `Host EC2` reason): only that run is planned again, as single
jobs, and every object ends with exactly one report.

What the harness adds for arrays, because moto lacks it (tests/support): AWS_BATCH_JOB_ARRAY_INDEX in a
child's environment, N_TO_N dependencies child by child (moto waits for the whole upstream array and never
marks a parent FAILED), and duplicate-name checks that skip the children moto lists beside their parent.

30 objects in CI; ALIGNBATCH_SLOW=1 runs 1,000.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import wait_for
from tests.support.pipeline import Figures, Pipeline

SLOW = os.environ.get("ALIGNBATCH_SLOW") == "1"
OBJECTS = 1000 if SLOW else 30
RECLAIMED = "Host EC2 (instance i-0a77a7000000000) terminated."


@pytest.mark.timeout(3600 if SLOW else 600)
def test_backfill_goes_as_arrays_and_a_killed_child_is_retried_alone(
    mb: Any, tmp_path: Path, figures: Figures, data_dir: Path
) -> None:
    pipe = Pipeline.create(mb, tmp_path, overrides={"ALIGNBATCH_BATCH_ARRAY_MIN_RUNS": "10"})
    try:
        body = (data_dir / "i_edge.bam").read_bytes()
        keys = pipe.put_many({f"backfill/s{i:04d}.bam": body for i in range(OBJECTS)})
        victim = keys[7]
        # Hold the victim's first download (its index child's) so that child sits in RUNNING.
        pipe.mb.set_faults(
            [{"api": "s3:getobject", "kind": "delay", "delay_seconds": 60, "limit": 1, "channel": "jobs",
              "key": victim}]
        )  # fmt: skip
        pipe.controller.workdir.mkdir(parents=True, exist_ok=True)  # the CLI runs where the daemon will
        out = pipe.cli("submit", f"s3://{pipe.inbox_bucket}/{pipe.inbox_prefix}backfill/",
                       "--config", str(pipe.controller.config), "--no-progress")  # fmt: skip
        assert out.returncode == 0, out
        pipe.controller.start().wait_ready()
        began = time.monotonic()
        figures.objects_dropped = OBJECTS

        def victim_running() -> str | None:
            runs = pipe.runs_by_key().get(victim, [])
            job = next((j for j in pipe.jobs() if runs and j["run_id"] == runs[0]["run_id"]
                        and j["step"] == "index"), None)  # fmt: skip
            if not job or not job["job_id"] or pipe.mb.injected_by_kind().get("delay", 0) < 1:
                return None
            return str(job["job_id"]) if any(r["job_id"] == job["job_id"] for r in pipe.mb.runs()) else None

        child = wait_for("the victim's index child to be running", victim_running, 180, 0.3)
        assert ":" in child  # a child of the index array
        pipe.mb.client("batch").terminate_job(jobId=child, reason=RECLAIMED)
        pipe.wait_settled(keys, timeout=3000 if SLOW else 400)
        figures.drain_seconds = time.monotonic() - began

        pipe.assert_exactly_once(keys)
        parents = [j for j in pipe.batch_jobs() if ":" not in j["jobId"]]
        arrays = sorted(j["jobName"].rsplit("-", 1)[-1] for j in parents if j["jobName"].startswith("array-"))
        assert arrays == ["alignstats", "index", "summary"], arrays  # one SubmitJob per step for all
        singles = sorted(j["jobName"] for j in parents if not j["jobName"].startswith("array-"))
        # Only the killed run went again, alone, as single jobs of its own.
        assert [n.rsplit("-", 2)[-2:] for n in singles] == [["a1", "r1"]] * 3, singles
        victim_run = pipe.runs_by_key()[victim][0]["run_id"]
        assert all(victim_run in n for n in singles)
        index = next(j for j in pipe.jobs() if j["run_id"] == victim_run and j["step"] == "index")
        assert index["reclaims"] == 1 and ":" not in index["job_id"]
        runs = pipe.mb.runs()
        index_children = [r for r in runs if r["job_id"].split(":")[0] == child.split(":")[0]]
        assert len(index_children) == OBJECTS and sum(r["killed"] for r in index_children) == 1
        assert not pipe.duplicate_batch_jobs()
        figures.extra["arrays"] = len(arrays)
        figures.extra["single_jobs"] = len(singles)
    finally:
        pipe.controller.stop()
