"""Scenario 6: faults inside a job, seen by the worker on the job's own connection to S3.

- the connection drops mid-download: the transfer is retried/resumed and the checksum still verified;
- an upload fails mid-multipart: the worker gives up with the transient code (75), Batch's retry strategy
  runs it again, and nothing (no object, no dangling upload) is visible at the destination;
- the scratch volume is too small: the worker refuses before downloading, with its own code (73).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness import wait_for
from tests.support.pipeline import Figures, Pipeline


def _job_events(pipe: Pipeline, job_id: str) -> list[dict[str, object]]:
    out = []
    for line in pipe.job_log(job_id, lines=500):
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_connection_dropped_mid_download_is_retried_and_verified(
    pipeline: Pipeline, figures: Figures, data_dir: Path
) -> None:
    pipe = pipeline
    key = pipe.inbox_prefix + "w/dropped.bam"
    pipe.mb.set_faults(
        [
            {
                "api": "s3:getobject",
                "kind": "drop",
                "after_bytes": 200_000,
                "limit": 2,
                "channel": "jobs",
                "key": key,
            }
        ]
    )
    pipe.controller.start().wait_ready()
    began = time.monotonic()
    pipe.put("w/dropped.bam.bai", (data_dir / "h_source.bam.bai").read_bytes())
    pipe.put("w/dropped.bam", (data_dir / "h_source.bam").read_bytes())
    figures.objects_dropped = 1
    pipe.wait_settled([key], timeout=120)
    figures.drain_seconds = time.monotonic() - began
    figures.add_faults(pipe.mb.injected_by_kind())
    pipe.assert_exactly_once([key])
    assert pipe.mb.injected_by_kind() == {"drop": 2}
    job = next(j for j in pipe.jobs() if j["step"] == "alignstats")
    transfers = [
        e
        for e in _job_events(pipe, job["job_id"])
        if e.get("event") == "transfer" and str(e.get("source", "")).split("?")[0].endswith("w/dropped.bam")
    ]
    assert transfers and all(str(t.get("verified", "")).startswith("checksum") for t in transfers), transfers
    report = json.loads(pipe.get_result(pipe.report_key(key)) or b"{}")
    assert report.get("InputFileSize") == (data_dir / "h_source.bam").stat().st_size


def test_upload_failing_mid_multipart_leaves_nothing(
    pipeline: Pipeline, figures: Figures, tmp_path: Path
) -> None:
    """Runs the worker through Batch directly (the job definition the controller uses, our command)."""
    pipe = pipeline
    s3 = pipe.mb.client("s3")
    payload = os.urandom(17 * 1024 * 1024)  # two parts (16 MiB + 1 MiB)
    source = f"s3://{pipe.inbox_bucket}/{pipe.inbox_prefix}w/big.bin"
    dest_key = f"{pipe.results_prefix}w/copy.bin"
    dest = f"s3://{pipe.results_bucket}/{dest_key}"
    s3.put_object(Bucket=pipe.inbox_bucket, Key=f"{pipe.inbox_prefix}w/big.bin", Body=payload)
    pipe.mb.set_faults(
        [
            {
                "api": "s3:uploadpart",
                "kind": "error500",
                "channel": "jobs",
                "key": dest_key,
                "query": "*partNumber=2*",
            }
        ]
    )
    # The worker's own S3 retry budget (default 8 attempts with back-off) only makes this test slow.
    pipe.mb.configure_jobs(
        env_rules=[{"match": "e2e-multipart-upload", "env": {"ALIGNBATCH_S3_MAX_ATTEMPTS": "2"}}]
    )
    batch = pipe.mb.client("batch")
    job_id = batch.submit_job(
        jobName="e2e-multipart-upload",
        jobQueue=pipe.job_queue,
        jobDefinition=pipe.outputs["batch"]["JobDefinitionAlignstats"],
        containerOverrides={
            "command": ["alignbatch-worker", "--input", source, "--output", dest, "--", "cp", source, dest]
        },
    )["jobId"]

    def final() -> dict[str, object] | None:
        job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        return job if job["status"] in ("SUCCEEDED", "FAILED") else None

    job = wait_for("the upload job to finish", final, 240, 1.0)
    figures.add_faults(pipe.mb.injected_by_kind())
    attempts = [r for r in pipe.mb.runs() if r["job_id"] == job_id]
    figures.extra["multipart_attempts"] = len(attempts)
    assert job["status"] == "FAILED"
    assert job["container"]["exitCode"] == 75, job["container"]
    # Transient → Batch's retry strategy (attempts from batch.yaml) ran it again, each attempt exit 75.
    assert [a["exit_code"] for a in attempts] == [75] * len(attempts) and len(attempts) > 1
    assert s3.list_objects_v2(Bucket=pipe.results_bucket, Prefix=dest_key).get("KeyCount", 0) == 0
    assert not s3.list_multipart_uploads(Bucket=pipe.results_bucket).get("Uploads")


@pytest.fixture()
def tiny_scratch(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A 16 MiB scratch volume (tmpfs) when we may mount one; else the worker's documented reserve knob
    makes the real volume "too small" the same way (free space < input + reserve)."""
    mount = tmp_path / "tiny-scratch"
    mount.mkdir()
    mounted = False
    if os.geteuid() == 0:
        mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True
            ).returncode
            == 0
        )
    try:
        if mounted:
            yield {"ALIGNBATCH_SCRATCH": str(mount)}
        else:
            yield {"ALIGNBATCH_SCRATCH_RESERVE_MIB": str(10**9)}
    finally:
        if mounted:
            subprocess.run(["umount", str(mount)], capture_output=True)


def test_scratch_too_small_fails_with_its_own_code(
    pipeline: Pipeline, figures: Figures, data_dir: Path, tiny_scratch: dict[str, str]
) -> None:
    pipe = pipeline
    pipe.mb.configure_jobs(env_rules=[{"match": "scratchy-*", "env": tiny_scratch}])
    pipe.controller.start().wait_ready()
    began = time.monotonic()
    pipe.put("w/scratchy.bam.bai", (data_dir / "h_source.bam.bai").read_bytes())
    key = pipe.put("w/scratchy.bam", (data_dir / "h_source.bam").read_bytes())
    figures.objects_dropped = 1
    figures.extra["tiny_scratch"] = "tmpfs" if "ALIGNBATCH_SCRATCH" in tiny_scratch else "reserve"
    pipe.wait_settled([key], timeout=120)
    figures.drain_seconds = time.monotonic() - began
    pipe.assert_exactly_once([], failed=[key])
    run = pipe.runs_by_key()[key][0]
    assert "(exit 73)" in run["reason"], run
    # Whichever step first needed to stage into the small volume (alignstats streams its BAM).
    job = next(j for j in pipe.jobs() if j["state"] == "FAILED" and j["exit_code"] == 73)
    attempts = [r["exit_code"] for r in pipe.mb.runs() if r["job_id"] == job["job_id"]]
    figures.extra["scratch_full_step"] = job["step"]
    figures.extra["scratch_full_attempts"] = len(attempts)
    assert len(attempts) > 1 and set(attempts) == {73}  # retried by Batch (73 is RETRY), failed each time
    assert any("scratch" in str(e.get("error", "")) for e in _job_events(pipe, job["job_id"]))
