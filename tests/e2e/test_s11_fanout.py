"""Scenario 11: one large indexed BAM goes out as a shard array → merge → summary (#17).

The object is over the fan-out threshold (the test lowers [fanout] bytes_per_second so a 24 MB case
projects as a large genome into 4 shards), its index is next to it, so the controller reads the index
and the plan is a shard array → merge → summary with 3 children: chr1 alone bounds the run, so chr2 and
chr3 share a child and chrM takes the unplaced records along (no child that would not end sooner is
started; worker/engine/shardplan.py). One child's first read of the
BAM is held and its process killed (SIGKILL, as an out-of-memory kill): Batch's retry strategy runs that
child again, alone, and the run still succeeds. The merged report must be byte-identical to the report
a single `alignstats` job writes for the same object.

What the harness adds, because moto lacks it (tests/support, EMULATION.md): AWS_BATCH_JOB_ARRAY_INDEX
in a child's environment, SubmitJob's own retryStrategy (moto ignores it), and the array parent's
FAILED/SUCCEEDED end once its children have ended (moto marks it SUCCEEDED only when described and
never FAILED).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import HarnessTimeout, wait_for
from tests.support.pipeline import Figures, Pipeline

SHARDS = 4  # what the size asks for
CHILDREN = 3  # what the index caps it at
CASE = "a_wgs.bam"


@pytest.mark.timeout(600)
def test_a_large_bam_fans_out_and_a_killed_child_is_retried_alone(
    mb: Any, tmp_path: Path, figures: Figures, refdata: Path
) -> None:
    body = (refdata / CASE).read_bytes()
    # Projected: size / bytes_per_second seconds; split into ceil(projected / target) = SHARDS shards.
    rate = 1_000_000
    target = -(-len(body) // rate) // SHARDS + 1
    pipe = Pipeline.create(
        mb, tmp_path, overrides={
            "ALIGNBATCH_FANOUT_MIN_PROJECTED_SECONDS": "1",
            "ALIGNBATCH_FANOUT_BYTES_PER_SECOND": str(rate),
            "ALIGNBATCH_FANOUT_TARGET_SHARD_SECONDS": str(target),
            "ALIGNBATCH_FANOUT_SHARD_VCPUS": "1",
        },
    )  # fmt: skip
    try:
        pipe.controller.start().wait_ready()
        # The index first, as an aligner's pipeline uploads it (else the plan would make one).
        pipe.put(f"big/{CASE}.bai", (refdata / f"{CASE}.bai").read_bytes())
        key = pipe.inbox_prefix + f"big/{CASE}"
        # Hold the first read of the BAM's bytes by a job: that child sits RUNNING until it is killed.
        pipe.mb.set_faults(
            [{"api": "s3:getobject", "kind": "delay", "delay_seconds": 120, "limit": 1, "channel": "jobs",
              "key": key}]
        )  # fmt: skip
        pipe.put(f"big/{CASE}", body)
        figures.objects_dropped = 1
        began = time.monotonic()

        def held_child() -> str | None:
            if pipe.mb.injected_by_kind().get("delay", 0) < 1:
                return None
            shard = next((j for j in pipe.jobs() if j["step"] == "shard" and j["job_id"]), None)
            if shard is None:
                return None
            live = [r for r in pipe.mb.runs() if r["job_id"].startswith(shard["job_id"] + ":")]
            running = [r for r in live if not r["ended"]]
            # The others finish in seconds; the held one is the last still running.
            return running[0]["job_id"] if len(live) == CHILDREN and len(running) == 1 else None

        try:
            child = wait_for("one shard child held in its download", held_child, 240, 0.5)
        except HarnessTimeout:
            raise AssertionError(
                f"no shard child held: jobs {[(j['step'], j['state'], j['reason']) for j in pipe.jobs()]}\n"
                f"{pipe.explain_failures()}\n{pipe.controller.log_tail(20)}"
            ) from None
        assert pipe.mb.crash_job(child)
        figures.kills = 1
        pipe.wait_settled([key], timeout=300)
        figures.drain_seconds = time.monotonic() - began
        pipe.assert_exactly_once([key])

        jobs = {j["step"]: j for j in pipe.jobs()}
        assert sorted(jobs) == ["alignstats", "shard", "summary"]  # the index was there
        parent = jobs["shard"]["job_id"]
        described = pipe.mb.client("batch").describe_jobs(jobs=[parent])["jobs"][0]
        assert described["arrayProperties"]["size"] == CHILDREN
        # Every child ran once, the killed one twice (attempt 2 after exit 137); merge and summary once.
        runs = pipe.mb.runs()
        children = sorted(
            (r["job_id"], r["attempt"], r["exit_code"]) for r in runs if r["job_id"].startswith(parent + ":")
        )
        expected = sorted(
            [(f"{parent}:{i}", 1, 0) for i in range(CHILDREN) if f"{parent}:{i}" != child]
            + [(child, 1, 137), (child, 2, 0)]
        )
        assert children == expected, children
        for step in ("alignstats", "summary"):
            assert [r["attempt"] for r in runs if r["job_id"] == jobs[step]["job_id"]] == [1]

        report = pipe.get_result(pipe.report_key(key))
        assert report is not None
        assert report == single_job_report(pipe, jobs["shard"], tmp_path), "the merged report differs"
        row = next(r for r in pipe.results_table() if r["inbox_key"] == f"big/{CASE}")
        assert row["shards"] == CHILDREN and row["job_id_shard"] == parent
        figures.extra["shards"] = CHILDREN
    finally:
        pipe.controller.stop()


def single_job_report(pipe: Pipeline, shard_job: dict[str, Any], tmp_path: Path) -> bytes:
    """The report one ordinary alignstats job writes for the same object with the same options."""
    import json

    from core.command import WorkerCommand

    spec = json.loads(shard_job["spec"])
    cmd = WorkerCommand.from_json(spec["command"])
    args = list(cmd.tool_command())
    cut = args.index("--shard-of")
    out = tmp_path / "single.alignstats.json"
    single = [*args[:cut], *args[cut + 4 :], "-o", str(out)]
    env = {**pipe.controller.env, "AWS_ENDPOINT_URL": pipe.mb.url()}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "alignbatch-worker"), "--", *single],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return out.read_bytes()
