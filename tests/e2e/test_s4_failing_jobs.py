"""Scenario 4: jobs that fail, and the operator's `retry`.

- a corrupt BAM: the tool exits non-retryably (65), one attempt, the run fails with that reason;
- a job terminated while running (TerminateJob → SIGKILL → exit 137);
- a job that disappears from Batch (as after Batch's ~24 h retention, here while it runs: the harness
  removes it from moto and kills its process): resolved by its outputs or marked lost, never polled forever.
Each ends in a terminal state with its reason, and `alignbatch-controller retry RUN_ID` runs it again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import MotoBatch, wait_for
from tests.support.pipeline import Figures, Pipeline

# [batch] missing_job_grace_seconds: how long a job may be absent from DescribeJobs before the
# controller resolves it. Production keeps the 120 s default; the scenario shortens it so it fits CI.
MISSING_GRACE = 10


def _run_for(pipe: Pipeline, key: str) -> dict[str, Any]:
    runs = pipe.runs_by_key().get(key, [])
    assert len(runs) == 1, runs
    return runs[0]


def _job(pipe: Pipeline, run_id: str, step: str) -> dict[str, Any] | None:
    return next((j for j in pipe.jobs() if j["run_id"] == run_id and j["step"] == step), None)


def _running_job(pipe: Pipeline, key: str, step: str, timeout: float = 90) -> tuple[str, str]:
    """Wait until `step` of `key`'s run has a process running; returns (run_id, job_id)."""

    def probe() -> tuple[str, str] | None:
        runs = pipe.runs_by_key().get(key, [])
        if not runs:
            return None
        job = _job(pipe, runs[0]["run_id"], step)
        if not job or not job["job_id"]:
            return None
        started = any(r["job_id"] == job["job_id"] and r["started"] for r in pipe.mb.runs())
        return (runs[0]["run_id"], job["job_id"]) if started else None

    found = wait_for(f"{step} of {key} to be running", probe, timeout, 0.2)
    # ... and inside its (stalled) download, not still starting up.
    wait_for("the stalled download", lambda: pipe.mb.injected_by_kind().get("delay", 0) >= 1, 30, 0.2)
    return found


def _stall_downloads_of(pipe: Pipeline, *rel_keys: str) -> None:
    """Hold the first GET of each object for a minute, so its job sits in RUNNING."""
    pipe.mb.set_faults(
        [
            {
                "api": "s3:getobject",
                "kind": "delay",
                "delay_seconds": 60,
                "limit": 1,
                "channel": "jobs",
                "key": pipe.inbox_prefix + rel,
            }
            for rel in rel_keys
        ]
    )


def _retry(pipe: Pipeline, run_id: str) -> None:
    out = pipe.cli("retry", run_id, "--config", str(pipe.controller.config))
    assert "will run again" in out.stdout, out


def test_corrupt_bam_and_terminated_job_fail_with_reasons_and_retry(
    pipeline: Pipeline, figures: Figures, data_dir: Path
) -> None:
    pipe = pipeline
    bai = (data_dir / "i_edge.bam.bai").read_bytes()
    _stall_downloads_of(pipe, "fail/terminated.bam")
    pipe.controller.start().wait_ready()
    began = time.monotonic()
    corrupt = pipe.put("fail/corrupt.bam", (data_dir / "h_corrupt_middle.bam").read_bytes())
    pipe.put("fail/terminated.bam.bai", bai)
    terminated = pipe.put("fail/terminated.bam", (data_dir / "i_edge.bam").read_bytes())
    figures.objects_dropped = 2

    run_id, job_id = _running_job(pipe, terminated, "alignstats")
    pipe.mb.client("batch").terminate_job(jobId=job_id, reason="e2e: operator terminated the job")
    pipe.wait_settled([corrupt, terminated], timeout=120)

    bad = _run_for(pipe, corrupt)
    assert bad["state"] == "failed" and "(exit 65)" in bad["reason"], bad
    # The step that read the BAM failed with 65; its dependants never ran (Batch fails them too).
    ran = [
        j
        for j in pipe.jobs()
        if j["run_id"] == bad["run_id"] and any(r["job_id"] == j["job_id"] for r in pipe.mb.runs())
    ]
    assert [(j["state"], j["exit_code"]) for j in ran] == [("FAILED", 65)], ran
    # Non-retryable: Batch's retry strategy (EXIT on everything but 73/75) ran it once.
    assert [r["attempt"] for r in pipe.mb.runs() if r["job_id"] == ran[0]["job_id"]] == [1]

    term = _run_for(pipe, terminated)
    assert term["state"] == "failed", term
    assert "operator terminated the job" in term["reason"] and "(exit 137)" in term["reason"], term
    summary = _job(pipe, term["run_id"], "summary")
    assert summary["state"] in ("CANCELLED", "FAILED")
    assert not any(r["job_id"] == summary["job_id"] for r in pipe.mb.runs())

    # The operator retries both: the corrupt one fails again the same way, the terminated one succeeds.
    _retry(pipe, bad["run_id"])
    _retry(pipe, run_id)
    wait_for(
        "the retried runs to finish",
        lambda: all(
            _run_for(pipe, k)["state"] in ("succeeded", "failed") and _run_for(pipe, k)["attempt"] == 2
            for k in (corrupt, terminated)
        ),
        120,
        1.0,
    )
    assert _run_for(pipe, corrupt)["state"] == "failed"
    assert _run_for(pipe, terminated)["state"] == "succeeded"
    assert _job(pipe, run_id, "alignstats")["name"].endswith("-a2")
    figures.drain_seconds = time.monotonic() - began
    figures.add_faults(pipe.mb.injected_by_kind())
    figures.extra["terminated"] = 1
    figures.duplicate_jobs = len(pipe.duplicate_batch_jobs())
    pipe.assert_exactly_once([terminated], failed=[corrupt])


@pytest.mark.timeout(300)
def test_job_that_disappears_from_batch_is_marked_lost_and_retried(
    mb: MotoBatch, tmp_path: Path, figures: Figures, data_dir: Path
) -> None:
    overrides = {"ALIGNBATCH_BATCH_MISSING_JOB_GRACE_SECONDS": str(MISSING_GRACE)}
    pipe = Pipeline.create(mb, tmp_path, overrides=overrides)
    try:
        _vanish_and_retry(pipe, figures, data_dir)
    finally:
        pipe.controller.stop()


def _vanish_and_retry(pipe: Pipeline, figures: Figures, data_dir: Path) -> None:
    _stall_downloads_of(pipe, "fail/vanished.bam")
    pipe.controller.start().wait_ready()
    began = time.monotonic()
    pipe.put("fail/vanished.bam.bai", (data_dir / "i_edge.bam.bai").read_bytes())
    vanished = pipe.put("fail/vanished.bam", (data_dir / "i_edge.bam").read_bytes())
    figures.objects_dropped = 1
    run_id, job_id = _running_job(pipe, vanished, "alignstats")
    assert pipe.mb.forget_job(job_id)
    assert pipe.mb.client("batch").describe_jobs(jobs=[job_id])["jobs"] == []

    pipe.wait_settled([vanished], timeout=MISSING_GRACE + 90)
    run = _run_for(pipe, vanished)
    assert run["state"] == "failed" and "lost" in run["reason"], run
    assert _job(pipe, run_id, "alignstats")["state"] == "LOST"

    _retry(pipe, run_id)
    wait_for("the retried run to succeed", lambda: _run_for(pipe, vanished)["state"] == "succeeded", 120, 1.0)
    figures.drain_seconds = time.monotonic() - began
    figures.extra["vanished"] = 1
    figures.duplicate_jobs = len(pipe.duplicate_batch_jobs())
    pipe.assert_exactly_once([vanished])
