"""The worker image built from deploy/docker/Dockerfile and run as AWS Batch runs it: the alignstats job
definition of deploy/cloudformation/batch.yaml (non-root user, read-only root file system, the scratch
host volume at its mount point, its environment, an init process, its vCPU and memory) turned into
`podman run` arguments, against a moto server on the host network.

Built once per tree (tests/support/podman.py caches the base image, wheels and the image by content).
Needs root and podman; skips with the reason otherwise.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pysam
import pytest

from tests.support.moto import DATA, FAKE_ENV
from tests.support.podman import (
    ROOT,
    VENDOR_TARBALL,
    WorkerImage,
    base_image,
    batch_run_args,
    batch_scratch,
    cache_dir,
    job_container,
    podman,
    podman_env,
    worker_image,
)
from tests.support.s3proxy import S3Proxy

pytestmark = pytest.mark.timeout(1500)  # the first test may build the image from scratch

KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/0b1e2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
IMPORTS = {"KmsKeyArn": KMS_KEY}
GOLDEN = DATA / "golden"


@pytest.fixture(scope="module")
def image() -> WorkerImage:
    built = worker_image()
    metrics = {"image": built.name, "size_mb": round(built.size_bytes / 1e6, 1)}
    if built.build_seconds is not None:
        metrics["build_seconds"] = round(built.build_seconds, 1)
    _record(metrics)
    return built


def _record(values: dict[str, Any]) -> None:
    """Image size, build time and start-up time, kept for the report (and printed with -s)."""
    path = cache_dir() / "image-metrics.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(values)
    path.write_text(json.dumps(current, indent=2))
    print("image metrics:", json.dumps(values))


@pytest.fixture()
def buckets(aws: str) -> Any:
    s3 = boto3.client("s3")
    for bucket in ("inbox", "results", "refs"):
        s3.create_bucket(Bucket=bucket)
    return s3


def _args(
    image: WorkerImage,
    tmp_path: Path,
    endpoint: str,
    command: list[str],
    *,
    name: str,
    definition: str = "AlignstatsJobDefinition",
    scratch: Path | None = None,
    **env: str,
) -> list[str]:
    container = job_container(definition)
    host_volumes = {"/scratch": scratch or batch_scratch(tmp_path)}
    args = batch_run_args(
        container,
        image=image.name,
        name=name,
        host_volumes=host_volumes,
        imports=IMPORTS,
        extra_env={**FAKE_ENV, "AWS_ENDPOINT_URL": endpoint, "AWS_BATCH_JOB_ID": name, **env},
        command=command,
    )
    return args


def _logs(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def _run(args: list[str], timeout: float = 300) -> tuple[int, list[dict[str, Any]], str, float]:
    """Run to completion; returns exit code, JSON log events, stdout and seconds to the first log line."""
    started = time.monotonic()
    proc = subprocess.Popen(
        ["podman", *args, ], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=podman_env(), text=True
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        first_line_s = time.monotonic() - started
        out, rest = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
        podman("rm", "-f", args[args.index("--name") + 1], check=False)
    stderr = first + rest
    try:
        logs = _logs(stderr)
    except json.JSONDecodeError:
        raise AssertionError(f"non-JSON output on stderr:\n{stderr[-3000:]}") from None
    assert logs, f"podman run exited {proc.returncode} before the worker logged:\n{stderr[-3000:]}"
    return proc.returncode, logs, out, first_line_s


def _body(data: bytes) -> list[bytes]:
    return data.split(b"\n")[3:]  # the lines after InputFileName/InputFileSize are the tool's own


def _tool_start(logs: list[dict[str, Any]]) -> dict[str, Any]:
    (start,) = [e for e in logs if e.get("event") == "tool_start"]
    return start


def test_bam_in_report_out_by_the_real_alignstats(
    image: WorkerImage, buckets: Any, aws: str, tmp_path: Path
) -> None:
    buckets.upload_file(str(DATA / "i_edge.bam"), "inbox", "run 1/sample.bam")
    buckets.upload_file(str(DATA / "i_edge.bam.bai"), "inbox", "run 1/sample.bam.bai")
    uri, out = "s3://inbox/run 1/sample.bam", "s3://results/reports/sample.alignstats.json"
    command = ["alignbatch-worker", "--", "alignstats", "-C", "-i", uri, "-o", out]
    code, logs, _, first_line_s = _run(
        _args(image, tmp_path, aws, command, name=f"t-bam-{uuid.uuid4().hex[:8]}")
    )
    assert code == 0, logs[-3:]
    start = _tool_start(logs)
    assert start["engine"] == "alignstats" and start["engine_path"] == "/opt/alignstats/bin/alignstats"
    assert start["engine_version"] == "0.11"
    report = buckets.get_object(Bucket="results", Key="reports/sample.alignstats.json")["Body"].read()
    assert _body(report) == _body((GOLDEN / "i_edge_bam__C.json").read_bytes())
    assert json.loads(report)["InputFileName"] == uri
    assert logs[-1]["event"] == "worker_summary" and logs[-1]["outcome"] == "succeeded"
    _record({"first_log_line_seconds": round(first_line_s, 2)})
    assert first_line_s < 30


def test_cram_with_reference_from_s3(image: WorkerImage, buckets: Any, aws: str, tmp_path: Path) -> None:
    cram = tmp_path / "h.cram"
    with (
        pysam.AlignmentFile(str(DATA / "h_source.bam")) as src,
        pysam.AlignmentFile(str(cram), "wc", template=src, reference_filename=str(DATA / "ref.fa")) as dst,
    ):
        for rec in src:
            dst.write(rec)
    buckets.upload_file(str(cram), "inbox", "h.cram")
    buckets.upload_file(str(DATA / "ref.fa"), "refs", "references/ref.fa")
    buckets.upload_file(str(DATA / "ref.fa.fai"), "refs", "references/ref.fa.fai")
    command = ["alignbatch-worker", "--", "alignstats", "-C", "-i", "s3://inbox/h.cram"]
    command += ["-T", "s3://refs/references/ref.fa", "-o", "s3://results/h.json"]
    code, logs, _, _ = _run(_args(image, tmp_path, aws, command, name=f"t-cram-{uuid.uuid4().hex[:8]}"))
    assert code == 0, logs[-3:]
    assert _tool_start(logs)["engine"] == "alignstats"
    report = buckets.get_object(Bucket="results", Key="h.json")["Body"].read()
    golden = json.loads((GOLDEN / "h_source__C.json").read_bytes())
    got = json.loads(report)
    assert got["InputFileName"] == "s3://inbox/h.cram"
    for key, value in golden.items():  # the same records: the same numbers as the BAM's golden report
        if key not in ("InputFileName", "InputFileSize"):
            assert got[key] == value, key


def test_truncated_bam_is_bad_input_and_writes_nothing(
    image: WorkerImage, buckets: Any, aws: str, tmp_path: Path
) -> None:
    buckets.upload_file(str(DATA / "h_truncated.bam"), "inbox", "t.bam")
    command = [
        "alignbatch-worker",
        "--",
        "alignstats",
        "-C",
        "-i",
        "s3://inbox/t.bam",
        "-o",
        "s3://results/t.json",
    ]
    code, logs, _, _ = _run(_args(image, tmp_path, aws, command, name=f"t-trunc-{uuid.uuid4().hex[:8]}"))
    assert code == 65, logs[-3:]
    assert "truncated" in logs[-1]["error"]
    assert buckets.list_objects_v2(Bucket="results").get("KeyCount", 0) == 0


def test_sigterm_stops_the_tool_and_aborts_uploads(
    image: WorkerImage, buckets: Any, aws: str, tmp_path: Path
) -> None:
    """Batch stops a job (terminate, Spot reclaim) with SIGTERM to the container's init: the worker must
    stop alignstats, abort what it started and exit 143 - while the input is still streaming in."""
    buckets.upload_file(str(DATA / "h_source.bam"), "inbox", "s.bam")
    buckets.upload_file(str(DATA / "h_source.bam.bai"), "inbox", "s.bam.bai")

    gets: list[str] = []

    def streaming_get(method: str, path: str, headers: dict[str, str]) -> bool:
        """Hold the BAM's third GET: after the header and end-of-file probes, the stream into alignstats."""
        if method == "GET" and path.split("?")[0].endswith("/s.bam"):
            gets.append(headers.get("Range", ""))
            return len(gets) >= 3
        return False

    name = f"t-term-{uuid.uuid4().hex[:8]}"
    with S3Proxy(aws, hold=streaming_get) as proxy:
        command = ["alignbatch-worker", "--stream", "--", "alignstats", "-C", "-i", "s3://inbox/s.bam"]
        command += ["-o", "s3://results/s.json"]
        args = _args(image, tmp_path, proxy.url, command, name=name)
        args.insert(args.index("run") + 1, "-d")
        podman(*args)
        try:
            if not proxy.holding.wait(120):
                raise AssertionError(
                    f"input never requested: {proxy.requests}\n{podman('logs', name).stderr}"
                )
            time.sleep(1)  # alignstats is running, waiting for bytes
            podman("kill", "--signal", "TERM", name)
            waited = podman("wait", name, timeout=30, check=False)
            if waited.returncode != 0 or not waited.stdout.strip():
                top = podman("top", name, "pid", "args", check=False).stdout
                logs_text = podman("logs", name).stderr
                raise AssertionError(f"still running 30 s after SIGTERM:\n{top}\n{logs_text}")
            code = int(waited.stdout.strip())
            logs = _logs(podman("logs", name).stderr)
        finally:
            proxy.release()
            podman("rm", "-f", name, check=False)
    assert code == 143, logs[-3:]
    assert "SIGTERM" in logs[-1].get("error", ""), logs[-1]
    assert _tool_start(logs)["engine"] == "alignstats"
    assert buckets.list_objects_v2(Bucket="results").get("KeyCount", 0) == 0
    assert not buckets.list_multipart_uploads(Bucket="results").get("Uploads")


@pytest.mark.parametrize(
    "size",
    [
        "4m",  # room for the numba seed and the header probe, not for the input: refused before staging
        "512k",  # not even room for the 1 MiB header probe: 73 too, not 70
    ],
)
def test_full_scratch_volume_is_exit_73(
    image: WorkerImage, buckets: Any, aws: str, tmp_path: Path, size: str
) -> None:
    buckets.upload_file(str(DATA / "h_source.bam"), "inbox", "big.bam")
    buckets.upload_file(str(DATA / "h_source.bam.bai"), "inbox", "big.bam.bai")
    command = ["alignbatch-worker", "--stage", "--", "alignstats", "-C", "-i", "s3://inbox/big.bam"]
    command += ["-o", "s3://results/big.json"]
    # The host's scratch volume as a tiny file system (as the launch template prepares it: owned by the
    # image's user, mode 0750), too small to stage the 1.7 MB input with the worker's reserve.
    small = tmp_path / "small-scratch"
    small.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},uid=10001,gid=10001,mode=0750", "tmpfs", str(small)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mount.stderr.strip()}")
    try:
        args = _args(image, tmp_path, aws, command, name=f"t-full-{uuid.uuid4().hex[:8]}", scratch=small)
        code, logs, _, _ = _run(args)
    finally:
        subprocess.run(["umount", str(small)], check=False)
    assert code == 73, json.dumps(logs, indent=1)[-4000:]
    assert buckets.list_objects_v2(Bucket="results").get("KeyCount", 0) == 0


def test_builtin_engine_runs_the_kernels_compiled_into_the_image(
    image: WorkerImage, buckets: Any, aws: str, tmp_path: Path
) -> None:
    """The image's ahead-of-time kernels are chosen (tool_start says which) and numba is never loaded:
    with NUMBA_DEBUG_CACHE=1 a JIT load would print its cache traffic on the tool's stdout."""
    buckets.upload_file(str(DATA / "i_edge.bam"), "inbox", "e.bam")
    buckets.upload_file(str(DATA / "i_edge.bam.bai"), "inbox", "e.bam.bai")
    command = ["alignbatch-worker", "--", "alignbatch-alignstats", "-C", "-i", "s3://inbox/e.bam"]
    command += ["-o", "s3://results/e.json"]
    name = f"t-aot-{uuid.uuid4().hex[:8]}"
    code, logs, stdout, _ = _run(_args(image, tmp_path, aws, command, name=name, NUMBA_DEBUG_CACHE="1"))
    assert code == 0, logs[-3:]
    start = _tool_start(logs)
    assert start["engine"] == "alignbatch-alignstats"
    # this machine's CPU has AVX2; on one without, the image's baseline build would be named
    assert start["engine_kernels"] in ("aot x86-64-v3", "aot generic"), start
    assert "data loaded" not in stdout and "data saved" not in stdout, stdout[-2000:]
    report = buckets.get_object(Bucket="results", Key="e.json")["Body"].read()
    assert _body(report) == _body((GOLDEN / "i_edge_bam__C.json").read_bytes())


def test_builtin_engine_jit_fallback_runs_from_the_numba_cache_built_into_the_image(
    image: WorkerImage, buckets: Any, aws: str, tmp_path: Path
) -> None:
    """With the compiled kernels refused (ALIGNBATCH_ENGINE_AOT=0) no job compiles either: the numba
    cache the build made is seeded into the scratch volume and every kernel loads from it
    (NUMBA_DEBUG_CACHE reports loads and saves on the tool's stdout)."""
    buckets.upload_file(str(DATA / "i_edge.bam"), "inbox", "e.bam")
    buckets.upload_file(str(DATA / "i_edge.bam.bai"), "inbox", "e.bam.bai")
    command = ["alignbatch-worker", "--", "alignbatch-alignstats", "-C", "-i", "s3://inbox/e.bam"]
    command += ["-o", "s3://results/e.json"]
    name = f"t-numba-{uuid.uuid4().hex[:8]}"
    env = {"NUMBA_DEBUG_CACHE": "1", "ALIGNBATCH_ENGINE_AOT": "0"}
    code, logs, stdout, _ = _run(_args(image, tmp_path, aws, command, name=name, **env))
    assert code == 0, logs[-3:]
    assert _tool_start(logs)["engine_kernels"] == "jit (ALIGNBATCH_ENGINE_AOT=0)"
    assert "data loaded" in stdout and "data saved" not in stdout, stdout[-2000:]
    report = buckets.get_object(Bucket="results", Key="e.json")["Body"].read()
    assert _body(report) == _body((GOLDEN / "i_edge_bam__C.json").read_bytes())
    assert any((tmp_path / "host-scratch" / ".alignbatch-numba").iterdir())


def test_index_named_sample_bai_is_found_when_s3_answers_403_for_missing_keys(
    image: WorkerImage, buckets: Any, aws: str, tmp_path: Path
) -> None:
    buckets.upload_file(str(DATA / "i_edge.bam"), "inbox", "sample.bam")
    buckets.upload_file(str(DATA / "i_edge.bam.bai"), "inbox", "sample.bai")
    buckets.upload_file(str(DATA / "i_edge_targets.bed"), "refs", "references/regions.bed")
    command = ["alignbatch-worker", "--", "alignstats", "-C", "-r", "s3://refs/references/regions.bed"]
    command += ["-i", "s3://inbox/sample.bam", "-o", "s3://results/sample.json"]
    with S3Proxy(aws, forbid_missing=True) as proxy:
        code, logs, _, _ = _run(
            _args(image, tmp_path, proxy.url, command, name=f"t-403-{uuid.uuid4().hex[:8]}")
        )
    # The worker finds the index by one LIST of the stem instead of HEADing `sample.bam.bai`, which this
    # proxy (like S3 for a role without list rights on the key) would answer with 403.
    assert "HEAD /inbox/sample.bai 200" in proxy.requests, proxy.requests
    assert not any(r.startswith("HEAD /inbox/sample.bam.bai") for r in proxy.requests), proxy.requests
    assert code == 0, logs


def test_build_refuses_alignstats_sources_that_are_not_the_pinned_tree(
    image: WorkerImage, tmp_path: Path
) -> None:
    """One changed byte in the vendored tarball: the native stage stops before compiling, with one line
    naming the tree it got and the pin. (Cheap: every layer before the check comes from the cache.)"""
    src = tmp_path / "alignstats-0.11"
    src.mkdir()
    subprocess.run(["tar", "-xzf", str(VENDOR_TARBALL), "--strip-components=1", "-C", str(src)], check=True)
    with open(src / "alignstats.c", "a") as fh:
        fh.write("/* not upstream */\n")
    tampered = tmp_path / "alignstats-0.11-tampered.tar.gz"
    subprocess.run(["tar", "-czf", str(tampered), "-C", str(tmp_path), src.name], check=True)
    proc = subprocess.run(
        [
            "bash", str(ROOT / "deploy" / "build-image.sh"), "--no-push", "--tag", "tampered",
            "--base-image", base_image(), "--alignstats-tarball", str(tampered),
            "--", "--network", "host", "--target", "native",
        ],
        capture_output=True, text=True, timeout=900, env=podman_env(), cwd=ROOT, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    (line,) = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("alignstats source ")]
    assert "ef0d5b0bd9e4e3bfe137a8955062fbb0ee5dc7c8" in line and "alignstats-0.11-tampered.tar.gz" in line
    assert "checking for" not in proc.stdout  # configure never ran
