"""Scenario 9: Spot reclaims fall back to On-Demand (#18).

The alignstats job's download is held so the job sits in RUNNING, then the harness ends it the way Batch
ends a job whose Spot host was reclaimed: TerminateJob with the status reason `Host EC2 (instance ...)
terminated.` (moto keeps the reason it is given as the job's statusReason; the container is killed, 137).
With `reclaims_before_fallback = 2` the first two attempts go to the stack's Spot-first queue and the
third to its On-Demand queue, where it succeeds; the run succeeds once, the ledger keeps each attempt
with the queue it went to, and the row has its placement and cost.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.support.harness import wait_for
from tests.support.pipeline import Figures, Pipeline

RECLAIMED = "Host EC2 (instance i-0e2e0000000000000) terminated."


def _alignstats(pipe: Pipeline) -> dict[str, Any] | None:
    return next((j for j in pipe.jobs() if j["step"] == "alignstats"), None)


def _reclaim_when_running(pipe: Pipeline, delays_seen: int) -> str:
    """Wait until the alignstats job's process is inside its held download, then reclaim its host."""

    def running() -> str | None:
        job = _alignstats(pipe)
        if not job or not job["job_id"] or pipe.mb.injected_by_kind().get("delay", 0) < delays_seen:
            return None
        started = any(r["job_id"] == job["job_id"] and r["started"] for r in pipe.mb.runs())
        return str(job["job_id"]) if started else None

    job_id = wait_for(f"alignstats attempt {delays_seen} to be running", running, 90, 0.2)
    pipe.mb.client("batch").terminate_job(jobId=job_id, reason=RECLAIMED)
    return job_id


def test_two_reclaims_on_spot_then_on_demand(
    mb: Any, tmp_path: Path, figures: Figures, data_dir: Path
) -> None:
    pipe = Pipeline.create(mb, tmp_path, overrides={})
    ondemand = pipe.outputs["batch"]["JobQueueOnDemand"]
    pipe.controller.env.update(
        {
            "ALIGNBATCH_BATCH_FALLBACK_QUEUES": json.dumps([ondemand]),
            "ALIGNBATCH_BATCH_RECLAIMS_BEFORE_FALLBACK": "2",
        }
    )
    try:
        key = pipe.inbox_prefix + "spot/s.bam"
        # Hold the first GET of each of the first two attempts for a minute: they sit in RUNNING.
        pipe.mb.set_faults(
            [{"api": "s3:getobject", "kind": "delay", "delay_seconds": 60, "limit": 2, "channel": "jobs",
              "key": key}]
        )  # fmt: skip
        pipe.controller.start().wait_ready()
        began = time.monotonic()
        pipe.put("spot/s.bam.bai", (data_dir / "i_edge.bam.bai").read_bytes())
        pipe.put("spot/s.bam", (data_dir / "i_edge.bam").read_bytes())
        figures.objects_dropped = 1

        first = _reclaim_when_running(pipe, 1)
        second = _reclaim_when_running(pipe, 2)
        assert first != second
        pipe.wait_settled([key], timeout=120)

        job = _alignstats(pipe)
        assert job is not None
        assert (job["state"], job["reclaims"], job["queue"]) == ("SUCCEEDED", 2, ondemand), job
        assert job["name"].endswith("-alignstats-a1-r2")
        # The stack's On-Demand queue has one compute environment: the row can say which ran it.
        assert job["compute_environment"] and job["capacity"] == "on_demand", job
        earlier = json.loads(job["history"])
        assert [(e["job_id"], e["queue"], e["reason"]) for e in earlier] == [
            (first, pipe.job_queue, RECLAIMED),
            (second, pipe.job_queue, RECLAIMED),
        ]
        by_name = {j["jobName"]: j for j in pipe.batch_jobs()}
        stats = sorted(n for n in by_name if "-alignstats-" in n)
        assert [n.rsplit("-", 2)[-2:] for n in stats] == [["alignstats", "a1"], ["a1", "r1"], ["a1", "r2"]]
        # Each summary job submitted behind a reclaimed attempt was cancelled before it ran: one ran.
        summaries = {j["jobId"] for j in pipe.batch_jobs() if "-summary-" in j["jobName"]}
        assert len([r for r in pipe.mb.runs() if r["job_id"] in summaries]) == 1
        assert not pipe.duplicate_batch_jobs()
        pipe.assert_exactly_once([key])
        # The row says where it ran and what it cost, every attempt counted (#18 cost per sample).
        wait_for("the table", lambda: pipe.results_table() or None, 30, 0.5)
        [row] = pipe.results_table()
        assert (row["reclaims"], row["queue"], row["capacity"]) == (2, ondemand, "on_demand"), row
        assert row["attempts"] == 3 + 3  # alignstats 3, a summary behind each alignstats attempt
        assert row["vcpu_seconds"] > 0 and row["est_cost_usd"] > 0
        figures.drain_seconds = time.monotonic() - began
        figures.extra["reclaims"] = 2
    finally:
        pipe.controller.stop()
