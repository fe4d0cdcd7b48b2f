"""Controller throughput on the moto server: N objects dropped into the inbox at once.

    python benchmarks/controller.py [--counts 1000 10000] [--rate 40]

For each N: start a fresh moto server (own process; by default with the SQS performance shim of
benchmarks/moto_fast_sqs.py, which changes moto's data structures, not its answers — without it moto's SQS
costs grow with the queue length and 10,000 queued messages never drain; `--plain-moto` to compare),
create bucket + queue + notification + Batch
resources through the API (moto Batch in no-docker mode: SubmitJob only records the job), put N small
.bam objects from 16 threads, then run `alignbatch-controller run --config FILE` as a real subprocess and
wait until every run has all its jobs submitted. Prints:
  - ingest rate: events/s from controller start to the last run committed in the ledger
  - submit rate: jobs/s and runs/s from controller start to the last job submitted
  - put→submit latency p50/p99 (put time measured by the client, submit time from the ledger), and the
    same from controller start (all N objects are put before the controller starts)
  - controller peak RSS (VmHWM of the controller process), CPU seconds of controller and moto, and the
    load average before and after (the machine may be shared)
  - how many active jobs reconcile described until the last job was submitted, and how many it held
    back because their upstream job was still active (alignbatch_reconcile_jobs_total from the
    controller's /metrics, read before SIGTERM; moto's no-docker Batch ends every job at once, so there
    everything held is released in the same pass)
The SubmitJob rate is the token bucket's ([batch] submit_rate_per_second, --rate): Batch allows 50 TPS per
account, so with 3 jobs per object that bucket, not the controller, bounds jobs/s in production.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.moto_fast_sqs import SHIM_SUMMARY  # noqa: E402
from benchmarks.procstat import memory  # noqa: E402
from tests.support.aws_env import create_aws_env  # noqa: E402
from tests.support.harness import metric_sum, parse_metrics  # noqa: E402
from tests.support.moto import FAKE_ENV, free_port  # noqa: E402

BIN = Path(sys.executable).parent


def start_moto(*, shim: bool = True) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = (
        [sys.executable, str(Path(__file__).with_name("moto_fast_sqs.py"))]
        if shim
        else [str(BIN / "moto_server")]
    )
    proc = subprocess.Popen(
        [*server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read()
            return proc, url
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def load_average() -> str:
    """1/5/15-minute load averages (the machine is shared; figures mean little without them)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def ledger_progress(db_path: Path) -> tuple[int, int, int]:
    """(runs, jobs, jobs submitted)"""
    if not db_path.exists():
        return 0, 0, 0
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as db:
            runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            jobs = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
            sub = db.execute("SELECT COUNT(*) FROM jobs WHERE job_id IS NOT NULL").fetchone()[0]
            return runs, jobs, sub
    except sqlite3.Error:
        return 0, 0, 0


def send_direct(env: Any, n: int, put_times: dict[str, float]) -> None:
    """Enqueue the S3 notifications moto would send for N puts (same body shape, key encoded the way
    moto encodes it), 10 per SendMessageBatch, without creating the objects. The controller's work is
    the same either way (it never reads the BAM bytes on the submit path; its index check is one LIST),
    except that its LISTs run against an empty bucket, which moto answers faster."""
    import json
    from urllib.parse import quote

    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1")
    for start in range(0, n, 10):
        entries = []
        for i in range(start, min(n, start + 10)):
            key = f"incoming/batch/sample{i:06d}.bam"
            body = {
                "Records": [
                    {
                        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                        "s3": {"bucket": {"name": env.inbox_bucket},
                               "object": {"key": quote(key, safe=""), "size": 8, "eTag": f"{i:032x}"}},
                    }
                ]
            }  # fmt: skip
            entries.append({"Id": str(i - start), "MessageBody": json.dumps(body)})
            put_times[key] = time.time()
        sqs.send_message_batch(QueueUrl=env.queue_url, Entries=entries)


def reconcile_counts(port: int) -> dict[str, float]:
    """alignbatch_reconcile_jobs_total by outcome, from the controller's /metrics: how many active jobs
    reconcile described over the run, and how many it held back (upstream still active)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    except OSError:
        return {}
    metrics = parse_metrics(text)
    name = "alignbatch_reconcile_jobs_total"
    return {o: metric_sum(metrics, name, outcome=o) for o in ("described", "held")}


def run_case(
    n: int,
    rate: float,
    workdir: Path,
    max_seconds: float = 0,
    direct: bool = False,
    start_first: bool = False,
    shim: bool = True,
) -> dict[str, float]:
    moto, url = start_moto(shim=shim)
    os.environ.update(FAKE_ENV)
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        import boto3

        env = create_aws_env(url)
        s3 = boto3.client("s3", region_name="us-east-1")
        cfg = workdir / f"controller-{n}.toml"
        db = workdir / f"state-{n}.db"
        text = env.config_toml(db).replace("wait_seconds = 1", "wait_seconds = 20")
        text = text.replace("submit_rate_per_second = 20", f"submit_rate_per_second = {rate}")
        text = text.replace("reconcile_seconds = 1", "reconcile_seconds = 30")
        cfg.write_text(text)
        put_times: dict[str, float] = {}

        def put(i: int) -> None:
            key = f"incoming/batch/sample{i:06d}.bam"
            s3.put_object(Bucket=env.inbox_bucket, Key=key, Body=b"BAM\x01" + i.to_bytes(4, "little"))
            put_times[key] = time.time()

        # Drop everything first (the "N objects at once" case: the queue holds N notifications when the
        # controller starts), so the emulator's cost of accepting uploads is not billed to the controller.
        def drop() -> None:
            if direct:
                send_direct(env, n, put_times)
            else:
                with ThreadPoolExecutor(16) as pool:
                    list(pool.map(put, range(n)))

        metrics_port = free_port()

        def start_controller() -> subprocess.Popen[bytes]:
            log = open(workdir / f"controller-{n}.log", "wb")  # noqa: SIM115
            return subprocess.Popen(
                [str(BIN / "alignbatch-controller"), "run", "--config", str(cfg), "--metrics-port",
                 str(metrics_port), "--log-level", "WARNING"],
                stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
            )  # fmt: skip

        t0 = time.time()
        if start_first:
            # The controller is already running when the burst arrives (moto's SQS slows down as its
            # queue grows, so a large N is only feasible if the queue is drained while it fills).
            t_start = time.time()
            ctl = start_controller()
            dropper = threading.Thread(target=drop)
            dropper.start()
        else:
            drop()
            t_start = time.time()
            ctl = start_controller()
        t_put = time.time()
        peak = 0.0
        runs_done_at = None
        while True:
            peak = max(peak, memory(ctl.pid).hwm_mib)
            runs, jobs, sub = ledger_progress(db)
            if runs >= n and runs_done_at is None:
                runs_done_at = time.time()
            if runs >= n and sub >= jobs:
                break
            if max_seconds and time.time() - t_start > max_seconds:
                print(
                    f"N={n}: stopped after {max_seconds:.0f}s with {runs} runs and {sub}/{jobs} jobs "
                    "submitted; the rates below cover what finished",
                    flush=True,
                )
                break
            if ctl.poll() is not None:
                raise RuntimeError(f"controller exited early; see {workdir}/controller-{n}.log")
            time.sleep(0.5)
        t_end = time.time()
        if start_first:
            dropper.join()
            t_put = time.time()
        peak = max(peak, memory(ctl.pid).hwm_mib)
        ctl_cpu, moto_cpu = cpu_seconds(ctl.pid), cpu_seconds(moto.pid)
        moto_rss = memory(moto.pid).hwm_mib
        reconciled = reconcile_counts(metrics_port)
        ctl.send_signal(signal.SIGTERM)
        ctl.wait(timeout=120)
        with sqlite3.connect(db) as con:
            rows = con.execute(
                "SELECT r.key, MIN(j.submitted_at) FROM runs r JOIN jobs j ON j.run_id = r.run_id "
                "GROUP BY r.run_id"
            ).fetchall()
            last_sub = con.execute("SELECT MAX(submitted_at) FROM jobs").fetchone()[0]
            njobs = con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        rows = [(key, sub) for key, sub in rows if sub is not None]
        lat = sorted(sub - put_times[key] for key, sub in rows if key in put_times)
        lat_start = sorted(sub - t_start for _, sub in rows)
        return {
            "objects": n,
            "put_seconds": t_put - t0,
            "ingest_events_per_s": (n if runs_done_at else runs) / ((runs_done_at or t_end) - t_start),
            "runs_submitted_per_s": len(rows) / (last_sub - t_start),
            "jobs_submitted_per_s": njobs / (last_sub - t_start),
            "since_start_p50_s": statistics.median(lat_start),
            "since_start_p99_s": lat_start[min(len(lat_start) - 1, int(len(lat_start) * 0.99))],
            "latency_p50_s": statistics.median(lat),
            "latency_p99_s": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "peak_rss_mib": peak,
            "total_seconds": t_end - t_start,
            "controller_cpu_s": ctl_cpu,
            "moto_cpu_s": moto_cpu,
            "moto_peak_rss_mib": moto_rss,
            "reconcile_described_jobs": reconciled.get("described", 0.0),
            "reconcile_held_jobs": reconciled.get("held", 0.0),
        }
    finally:
        moto.terminate()
        moto.wait(timeout=30)


def events_mode(args: argparse.Namespace) -> None:
    from benchmarks.describe_calls import describe_calls_case

    print(
        "simulated Batch (dependsOn, capacity, durations; benchmarks/describe_calls.py), real controller; "
        f"{args.slots} jobs at once; reconcile every {args.reconcile_seconds}s polling, "
        f"every {args.sweep_seconds}s with events; {args.lose_events:.0%} of events lost",
        flush=True,
    )
    for n in args.counts:
        for events in (False, True):
            r = describe_calls_case(
                n, events=events, reconcile_seconds=args.reconcile_seconds, sweep_seconds=args.sweep_seconds,
                slots=args.slots, lose=args.lose_events if events else 0.0,
            )  # fmt: skip
            print(
                f"N={n:>6} {'events + sweep' if events else 'polling       '} | "
                f"DescribeJobs calls {r['describe_calls']:>6.0f} = "
                f"{1000 * r['describe_calls'] / n:.0f} per 1,000 runs | "
                f"events applied {r['events_applied']:.0f} | finished {r['finished']:.0f}/{n} in "
                f"{r['hours']:.1f} simulated h",
                flush=True,
            )


def backfill_mode(args: argparse.Namespace) -> None:
    from benchmarks.array_backfill import backfill_case, print_case, profile_case

    print(f"emulator: {SHIM_SUMMARY}; Batch in moto's no-docker mode; SubmitJob bucket {args.rate:g}/s")
    with tempfile.TemporaryDirectory(prefix="ab-bench-") as tmp:
        for n in args.counts:
            if args.profile:
                load_before = load_average()
                profile_case(
                    n, rate=args.rate, min_runs=args.array_min_runs, workdir=Path(tmp), start_moto=start_moto,
                    out=Path(args.profile) / f"backfill-{n}.prof",
                )  # fmt: skip
                print(f"  load average {load_before} before, {load_average()} after", flush=True)
                continue
            load_before = load_average()
            r = backfill_case(
                n, rate=args.rate, min_runs=args.array_min_runs, workdir=Path(tmp), start_moto=start_moto,
                cpu_seconds=cpu_seconds, max_seconds=args.max_seconds,
            )  # fmt: skip
            print_case(r, args.array_min_runs, args.rate)
            print(f"  load average {load_before} before, {load_average()} after", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--rate", type=float, default=40.0, help="SubmitJob token bucket (jobs/s)")
    parser.add_argument(
        "--max-seconds", type=float, default=0, help="stop a case after this long (0 = never)"
    )
    parser.add_argument(
        "--direct-events", action="store_true", help="enqueue S3-shaped notifications, no puts"
    )
    parser.add_argument("--start-first", action="store_true", help="start the controller before the burst")
    parser.add_argument(
        "--plain-moto",
        action="store_true",
        help="moto_server without the SQS shim (slow past ~2,000 messages)",
    )
    parser.add_argument(
        "--events-mode", action="store_true",
        help="DescribeJobs calls per N runs, polling vs. state-change events (benchmarks/describe_calls.py)",
    )  # fmt: skip
    parser.add_argument("--reconcile-seconds", type=int, default=30)
    parser.add_argument("--sweep-seconds", type=int, default=300)
    parser.add_argument("--slots", type=int, default=200, help="events mode: jobs Batch runs at once")
    parser.add_argument("--lose-events", type=float, default=0.0, help="events mode: fraction dropped")
    parser.add_argument(
        "--backfill", action="store_true",
        help="N runs waiting in the ledger, submitted as array jobs (benchmarks/array_backfill.py)",
    )  # fmt: skip
    parser.add_argument("--array-min-runs", type=int, default=100, help="backfill: 0 = single jobs only")
    parser.add_argument(
        "--profile", metavar="DIR",
        help="backfill: run the submission pass in this process under cProfile, stats into DIR",
    )  # fmt: skip
    args = parser.parse_args()
    if args.events_mode:
        events_mode(args)
        return
    if args.backfill:
        backfill_mode(args)
        return
    print(
        "emulator: "
        + ("moto_server, unmodified" if args.plain_moto else SHIM_SUMMARY)
        + f"; Batch in moto's no-docker mode; SubmitJob bucket {args.rate:g}/s",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="ab-bench-") as tmp:
        for n in args.counts:
            load_before = load_average()
            r = run_case(
                n,
                args.rate,
                Path(tmp),
                args.max_seconds,
                args.direct_events,
                args.start_first,
                shim=not args.plain_moto,
            )
            print(
                f"N={r['objects']:>6} {'(direct events)' if args.direct_events else ''} "
                f"puts {r['put_seconds']:.1f}s | "
                f"ingest {r['ingest_events_per_s']:.0f} events/s | "
                f"submitted {r['runs_submitted_per_s']:.1f} runs/s = {r['jobs_submitted_per_s']:.1f} jobs/s "
                f"(bucket {args.rate:g}/s) | "
                f"put→submit p50 {r['latency_p50_s']:.1f}s p99 {r['latency_p99_s']:.1f}s "
                f"(from controller start p50 {r['since_start_p50_s']:.1f}s "
                f"p99 {r['since_start_p99_s']:.1f}s) | "
                f"controller peak RSS {r['peak_rss_mib']:.0f} MiB | drain {r['total_seconds']:.0f}s | "
                f"CPU controller {r['controller_cpu_s']:.0f}s, moto {r['moto_cpu_s']:.0f}s "
                f"(moto peak RSS {r['moto_peak_rss_mib']:.0f} MiB) | "
                f"reconcile described {r['reconcile_described_jobs']:.0f} jobs, held back "
                f"{r['reconcile_held_jobs']:.0f} (upstream active) | "
                f"load average {load_before} before, {load_average()} after",
                flush=True,
            )


if __name__ == "__main__":
    main()
