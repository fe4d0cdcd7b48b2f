"""A backfill's submission on moto: N runs waiting in the ledger, one controller, array jobs (#18).

    python benchmarks/controller.py --backfill --counts 10000 100000 [--array-min-runs 100] [--rate 40]

The ledger is seeded with N runs exactly as intake plans them (controller.planner on N inbox keys, the
rows written in one transaction instead of N, so seeding is not what is measured; no objects are put:
the submit path never reads them). Then `alignbatch-controller run --config FILE` starts against a fresh
moto server (no-docker Batch: SubmitJob records the job and, for an array, its children) and the case
ends when every job has an id. Printed: SubmitJob calls (array parents plus single jobs, counted from
moto), time from controller start to the last job submitted, controller peak RSS and CPU seconds, moto
CPU seconds. `--array-min-runs 0` gives the single-job baseline (one SubmitJob per job at --rate).
Reconcile is set to once an hour so that DescribeJobs of N x 3 children (which moto answers by scanning
every job it holds) stays out of the measured window.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.procstat import memory

BIN = Path(sys.executable).parent


def seed_ledger(db_path: Path, n: int, inbox_root: str, results_root: str) -> None:
    """N active runs with their planned jobs, as intake would have committed them."""
    from controller.config import DEFAULT_TIERS, PipelineOptions
    from controller.ledger import Ledger
    from controller.model import InputObject
    from controller.planner import PlanContext, plan_run
    from controller.states import JobState, RunState

    Ledger(db_path).close()  # the schema
    bucket = inbox_root.removeprefix("s3://").split("/", 1)[0]
    ctx = PlanContext(inbox_root, results_root, PipelineOptions(), DEFAULT_TIERS, "bench")
    now = time.time()
    runs, jobs = [], []
    for i in range(n):
        obj = InputObject(bucket, f"incoming/backfill/sample{i:06d}.bam", 1000, f"etag{i}", None, False)
        plan = plan_run(obj, ctx)
        assert not hasattr(plan, "reason"), plan
        runs.append((
            plan.run_id, bucket, obj.key, obj.etag, obj.etag, obj.size, plan.sample, plan.input_uri,
            plan.inbox_key, plan.report_uri, plan.row_uri, RunState.ACTIVE, now + i * 1e-6, now,
        ))  # fmt: skip
        jobs += [(plan.run_id, s.step, s.name, JobState.PLANNED, s.to_json(), now) for s in plan.jobs]
    with sqlite3.connect(db_path) as db:
        db.executemany(
            """INSERT INTO runs (run_id, bucket, key, version, etag, size, sample, input_uri, inbox_key,
               report_uri, row_uri, state, attempt, created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)""",
            runs,
        )
        db.executemany(
            "INSERT INTO jobs (run_id, step, name, state, spec, updated_at) VALUES (?, ?, ?, ?, ?, ?)", jobs
        )


def submit_calls(queue: str) -> tuple[int, int]:
    """(SubmitJob calls, children) from moto: array parents and single jobs are calls; moto lists an
    array's children (`<parent>:<i>`) beside their parent."""
    import boto3

    listed = boto3.client("batch", region_name="us-east-1").list_jobs(jobQueue=queue)["jobSummaryList"]
    return sum(":" not in j["jobId"] for j in listed), sum(":" in j["jobId"] for j in listed)


def backfill_case(
    n: int, *, rate: float, min_runs: int, workdir: Path, start_moto: Any, cpu_seconds: Any,
    max_seconds: float = 0,
) -> dict[str, float]:  # fmt: skip
    from tests.support.aws_env import create_aws_env
    from tests.support.moto import FAKE_ENV

    moto, url = start_moto()
    os.environ.update(FAKE_ENV)
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        env = create_aws_env(url, notification=False)
        db = workdir / f"backfill-{n}.db"
        db.unlink(missing_ok=True)
        t_seed = time.monotonic()
        seed_ledger(db, n, f"s3://{env.inbox_bucket}/incoming", f"s3://{env.results_bucket}/alignbatch")
        seeded = time.monotonic() - t_seed
        cfg = workdir / f"backfill-{n}.toml"
        text = env.config_toml(db).replace("submit_rate_per_second = 20", f"submit_rate_per_second = {rate}")
        text = text.replace("reconcile_seconds = 1", "reconcile_seconds = 3600")
        text = text.replace("[pipeline]", f"array_min_runs = {min_runs}\n[pipeline]")
        cfg.write_text(text.replace("[state]", "[state]\nbackup_seconds = 0"))
        log = open(Path(os.environ.get("ALIGNBATCH_BENCH_LOGS", workdir)) / f"backfill-{n}.log", "wb")  # noqa: SIM115
        t0 = time.time()
        ctl = subprocess.Popen(
            [str(BIN / "alignbatch-controller"), "run", "--config", str(cfg), "--metrics-port", "0",
             "--log-level", "WARNING"],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
        )  # fmt: skip
        peak = 0.0
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as ro:
            while True:
                peak = max(peak, memory(ctl.pid).hwm_mib)
                left = ro.execute("SELECT COUNT(*) FROM jobs WHERE job_id IS NULL").fetchone()[0]
                if left == 0 or (max_seconds and time.time() - t0 > max_seconds) or ctl.poll() is not None:
                    break
                time.sleep(0.5)
            last = ro.execute("SELECT MAX(submitted_at), COUNT(job_id), COUNT(*) FROM jobs").fetchone()
        peak = max(peak, memory(ctl.pid).hwm_mib)
        ctl_cpu, moto_cpu = cpu_seconds(ctl.pid), cpu_seconds(moto.pid)
        # SIGTERM ends with a last reconcile, which on moto means DescribeJobs of every child, each call a
        # scan of all N x 3 jobs moto holds: measured already, so it is not waited for.
        ctl.send_signal(signal.SIGTERM)
        try:
            ctl.wait(timeout=30)
        except subprocess.TimeoutExpired:
            ctl.kill()
            ctl.wait()
        calls, children = submit_calls(env.job_queue)
        return {
            "objects": n, "seed_seconds": seeded, "submitted_jobs": last[1], "jobs": last[2],
            "submit_seconds": (last[0] or time.time()) - t0, "submit_calls": calls, "children": children,
            "peak_rss_mib": peak, "controller_cpu_s": ctl_cpu, "moto_cpu_s": moto_cpu,
        }  # fmt: skip
    finally:
        moto.terminate()
        moto.wait(timeout=60)


def print_case(r: dict[str, float], min_runs: int, rate: float) -> None:
    mode = f"arrays (array_min_runs {min_runs})" if min_runs else f"single jobs (bucket {rate:g}/s)"
    print(
        f"N={r['objects']:>7.0f} backfill, {mode} | SubmitJob calls {r['submit_calls']:.0f} "
        f"({r['children']:.0f} array children) | {r['submitted_jobs']:.0f}/{r['jobs']:.0f} jobs submitted "
        f"{r['submit_seconds']:.1f}s after controller start | "
        f"controller peak RSS {r['peak_rss_mib']:.0f} MiB, "
        f"CPU {r['controller_cpu_s']:.1f}s | moto CPU {r['moto_cpu_s']:.1f}s | ledger seeded in "
        f"{r['seed_seconds']:.1f}s",
        flush=True,
    )
