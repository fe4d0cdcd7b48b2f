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

API time against the controller's own time: the controller runs with botocore's client-side monitoring
switched on (AWS_CSM_ENABLED, a standard botocore setting; nothing in boto3 or the controller is
patched), which sends one UDP datagram per API call, with its start and latency in milliseconds (from
parameter building to the parsed response, retries included), to a listener in this process
(ApiCallLog). The ledger's intent_at/submitted_at of each array then split the time until every run
was submitted into: SubmitJob calls, manifest PutObject calls, the controller's own time inside each
array's submission (intent transaction, manifest and request building), its time between arrays
(mark_array_submitted, fresh_runs/jobs_for_runs/group_runs, the next intent), and startup (process start
to the first intent). Other AWS calls (SQS long polls on intake's thread, startup checks) are summed by
API; they overlap the submit path rather than delay it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.procstat import memory

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class ApiCall:
    service: str  # botocore's service id: "Batch", "S3", "SQS"
    api: str
    start: float  # epoch seconds (millisecond resolution)
    seconds: float


class ApiCallLog:
    """Listens for botocore's client-side monitoring datagrams (one `ApiCall` per client call) on a
    loopback UDP port; `env()` is what a process needs to send them here."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.calls: list[ApiCall] = []
        self.undecoded = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="csm-listener", daemon=True)
        self._thread.start()

    def env(self) -> dict[str, str]:
        return {
            "AWS_CSM_ENABLED": "true", "AWS_CSM_HOST": "127.0.0.1",
            "AWS_CSM_PORT": str(self.sock.getsockname()[1]), "AWS_CSM_CLIENT_ID": "alignbatch-bench",
        }  # fmt: skip

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                event = json.loads(data)
            except ValueError:
                self.undecoded += 1
                continue
            if event.get("Type") == "ApiCall":
                start, seconds = event["Timestamp"] / 1000, event["Latency"] / 1000
                self.calls.append(ApiCall(event["Service"], event["Api"], start, seconds))

    def close(self) -> None:
        time.sleep(0.5)  # the last datagrams
        self._stop.set()
        self._thread.join()
        self.sock.close()


def time_breakdown(
    calls: list[ApiCall], arrays: list[tuple[float, float]], t0: float, t_end: float
) -> dict[str, float]:
    """Split [t0, t_end] (controller start to the last job submitted) by what the time went to.
    `arrays`: (intent_at, submitted_at) of each array, in order. SubmitJob and PutObject calls are on the
    submit path (one thread, one call at a time); the rest of the window is the controller's own."""
    window = [c for c in calls if t0 <= c.start <= t_end]
    submit = [c for c in window if c.api == "SubmitJob"]
    put = [c for c in window if c.api == "PutObject"]
    other: dict[str, list[ApiCall]] = {}
    for c in window:
        if c.api not in ("SubmitJob", "PutObject"):
            other.setdefault(f"{c.service}.{c.api}", []).append(c)

    def inside(cs: list[ApiCall], a: float, b: float) -> float:
        return sum(c.seconds for c in cs if a <= c.start <= b)

    in_array = between = 0.0
    for k, (intent, submitted) in enumerate(arrays):
        in_array += (submitted - intent) - inside(submit + put, intent, submitted)
        if k:
            between += intent - arrays[k - 1][1]
    first = arrays[0][0] if arrays else t_end
    out = {
        "wall_s": t_end - t0,
        "startup_s": first - t0,  # process start, imports, startup checks, the first fresh_runs/jobs_for_runs
        "submitjob_calls": len(submit), "submitjob_s": sum(c.seconds for c in submit),
        "submitjob_max_s": max((c.seconds for c in submit), default=0.0),
        "putobject_calls": len(put), "putobject_s": sum(c.seconds for c in put),
        "own_in_array_s": in_array, "own_between_arrays_s": between,
        # after the last array: the per-run path (groups' remainders), if anything was left
        "after_arrays_s": t_end - arrays[-1][1] if arrays else 0.0,
    }  # fmt: skip
    for name, cs in sorted(other.items()):
        out[f"other:{name}"] = sum(c.seconds for c in cs)
        out[f"other_calls:{name}"] = len(cs)
    return out


def array_times(ro: sqlite3.Connection) -> list[tuple[float, float]]:
    """(intent_at, submitted_at) of every array in the ledger, in submission order."""
    rows = ro.execute(
        """SELECT MIN(intent_at), MAX(submitted_at) FROM jobs WHERE array_name IS NOT NULL
           GROUP BY array_name ORDER BY MIN(intent_at)"""
    ).fetchall()
    return [(a, b) for a, b in rows if a is not None and b is not None]


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


def write_config(env: Any, db: Path, cfg: Path, *, rate: float, min_runs: int) -> None:
    text = env.config_toml(db).replace("submit_rate_per_second = 20", f"submit_rate_per_second = {rate}")
    text = text.replace("reconcile_seconds = 1", "reconcile_seconds = 3600")
    text = text.replace("[pipeline]", f"array_min_runs = {min_runs}\n[pipeline]")
    cfg.write_text(text.replace("[state]", "[state]\nbackup_seconds = 0"))


def profile_case(
    n: int, *, rate: float, min_runs: int, workdir: Path, start_moto: Any, out: Path, top: int = 30
) -> float:
    """The same backfill with the submission pass run in this process under cProfile (the daemon runs it
    on a thread, which cProfile does not follow): SubmitJob's client side is in the profile, moto is not.
    Writes the stats to `out` and prints the `top` functions by cumulative and by own time. Returns the
    pass's wall seconds."""
    import cProfile
    import pstats

    from controller.config import load_config
    from controller.factory import build_controller
    from controller.metrics import Metrics
    from tests.support.aws_env import create_aws_env
    from tests.support.moto import FAKE_ENV

    moto, url = start_moto()
    os.environ.update(FAKE_ENV)
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        env = create_aws_env(url, notification=False)
        db, cfg = workdir / f"profile-{n}.db", workdir / f"profile-{n}.toml"
        db.unlink(missing_ok=True)
        seed_ledger(db, n, f"s3://{env.inbox_bucket}/incoming", f"s3://{env.results_bucket}/alignbatch")
        write_config(env, db, cfg, rate=rate, min_runs=min_runs)
        ctl = build_controller(load_config(cfg), metrics=Metrics(), once=True, with_source=False)
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        submitted = ctl.submit_ready()
        prof.disable()
        wall = time.perf_counter() - t
        prof.dump_stats(out)
        print(f"N={n}: submit_ready() submitted {submitted} jobs in {wall:.1f}s (profiled); stats in {out}")
        stats = pstats.Stats(str(out))
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)
        return wall
    finally:
        moto.terminate()
        moto.wait(timeout=60)


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
        write_config(env, db, cfg, rate=rate, min_runs=min_runs)
        log = open(Path(os.environ.get("ALIGNBATCH_BENCH_LOGS", workdir)) / f"backfill-{n}.log", "wb")  # noqa: SIM115
        api = ApiCallLog()
        t0 = time.time()
        ctl = subprocess.Popen(
            [str(BIN / "alignbatch-controller"), "run", "--config", str(cfg), "--metrics-port", "0",
             "--log-level", "WARNING"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **api.env()},
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
            arrays = array_times(ro)
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
        api.close()
        calls, children = submit_calls(env.job_queue)
        breakdown = time_breakdown(api.calls, arrays, t0, last[0] or time.time())
        return breakdown | {
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
    own = r["startup_s"] + r["own_in_array_s"] + r["own_between_arrays_s"] + r["after_arrays_s"]
    print(
        f"  until all submitted {r['wall_s']:.1f}s = API on the submit path "
        f"{r['submitjob_s'] + r['putobject_s']:.1f}s (SubmitJob {r['submitjob_calls']:.0f} calls "
        f"{r['submitjob_s']:.1f}s, longest {r['submitjob_max_s']:.2f}s; manifest PutObject "
        f"{r['putobject_calls']:.0f} calls {r['putobject_s']:.1f}s) + controller's own {own:.1f}s "
        f"(startup to first intent {r['startup_s']:.1f}s, between arrays {r['own_between_arrays_s']:.1f}s, "
        f"inside arrays {r['own_in_array_s']:.1f}s, after the arrays {r['after_arrays_s']:.1f}s)",
        flush=True,
    )
    other = sorted(k.split(":", 1)[1] for k in r if k.startswith("other:"))
    if other:
        print(
            "  other AWS calls meanwhile (other threads, overlapping): "
            + ", ".join(f"{k} {r['other_calls:' + k]:.0f}x {r['other:' + k]:.1f}s" for k in other),
            flush=True,
        )
