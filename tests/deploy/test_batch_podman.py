"""Batch through real containers: moto's Batch in Docker mode, its Docker client pointed at
`podman system service`, runs the three job definitions of deploy/cloudformation/batch.yaml (registered
with the test image) as the controller chains them - index -> alignstats (dependsOn) -> summary - each
job a real container of the worker image on the host network, talking to the same moto server.

Moto's Docker mode ignores a job definition's user and read-only root (tests/deploy/test_image_run.py
covers those with podman directly); what this adds is the Batch side: dependsOn, container overrides, the
job's exit code becoming its status, and the logs landing in /aws/batch/job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.moto import DATA, FAKE_ENV, free_port
from tests.support.podman import WorkerImage, batch_scratch, job_container, podman, podman_env, worker_image

pytestmark = pytest.mark.timeout(1500)

GOLDEN = DATA / "golden"


@pytest.fixture(scope="module")
def image() -> WorkerImage:
    return worker_image()


@pytest.fixture(scope="module")
def docker_mode_moto(image: WorkerImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A podman API socket and a moto server (its own process) whose Batch runs jobs through it."""
    workdir = tmp_path_factory.mktemp("batch-podman")
    sock = workdir / "podman.sock"
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{sock}"],
        env=podman_env(),
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "podman-service.log", "w"),  # noqa: SIM115
    )
    port = free_port()
    env = {
        **os.environ,
        **FAKE_ENV,
        "DOCKER_HOST": f"unix://{sock}",
        "MOTO_DOCKER_NETWORK_MODE": "host",
        "MOTO_PORT": str(port),
    }
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=open(workdir / "moto.log", "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not sock.exists() or not _answers(endpoint):
            assert service.poll() is None, (workdir / "podman-service.log").read_text()
            assert moto.poll() is None, (workdir / "moto.log").read_text()
            assert time.monotonic() < deadline, "podman service or moto did not come up"
            time.sleep(0.2)
        yield endpoint
    finally:
        for proc in (moto, service):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _answers(endpoint: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
            return True
    except Exception:
        return False


def _register(batch: Any, definition: str, name: str, image: str, endpoint: str, scratch: Path) -> str:
    """The template's job definition, as CloudFormation would register it, with the test image."""
    container = job_container(definition)
    env = {e["Name"]: e["Value"] for e in container["Environment"] if isinstance(e["Value"], str)}
    env.update({**FAKE_ENV, "AWS_ENDPOINT_URL": endpoint, "ALIGNBATCH_SSE_KMS_KEY_ID": "alias/alignbatch"})
    props = {
        "image": image,
        "command": list(container["Command"]),
        "user": str(container["User"]),
        "readonlyRootFilesystem": bool(container["ReadonlyRootFilesystem"]),
        "resourceRequirements": [
            {"type": r["Type"], "value": str(r["Value"])} for r in container["ResourceRequirements"]
        ],
        "environment": [{"name": k, "value": v} for k, v in env.items()],
        "volumes": [{"name": v["Name"], "host": {"sourcePath": str(scratch)}} for v in container["Volumes"]],
        "mountPoints": [
            {
                "sourceVolume": m["SourceVolume"],
                "containerPath": m["ContainerPath"],
                "readOnly": m["ReadOnly"],
            }
            for m in container["MountPoints"]
        ],
    }
    return str(
        batch.register_job_definition(jobDefinitionName=name, type="container", containerProperties=props)[
            "jobDefinitionArn"
        ]
    )


def test_index_alignstats_summary_chain_in_real_containers(
    docker_mode_moto: str, image: WorkerImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = docker_mode_moto
    for key, value in FAKE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    iam, batch, s3 = (boto3.client(s) for s in ("iam", "batch", "s3"))
    logs = boto3.client("logs")
    role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    ce = batch.create_compute_environment(
        computeEnvironmentName="alignbatch-ce", type="UNMANAGED", state="ENABLED", serviceRole=role
    )["computeEnvironmentArn"]
    queue = batch.create_job_queue(
        jobQueueName="alignbatch",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )["jobQueueArn"]
    scratch = batch_scratch(tmp_path)
    defs = {
        step: _register(
            batch, f"{step.capitalize()}JobDefinition", f"alignbatch-{step}", image.name, endpoint, scratch
        )
        for step in ("index", "alignstats", "summary")
    }
    for bucket in ("inbox", "results"):
        s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(DATA / "i_edge.bam"), "inbox", "incoming/s1.bam")  # no index: the chain builds one
    src, index = "s3://inbox/incoming/s1.bam", "s3://results/alignbatch/indexes/s1.bam.bai"
    report, row = (
        "s3://results/alignbatch/reports/s1.bam.alignstats.json",
        "s3://results/alignbatch/rows/r1.json",
    )
    commands = {
        "index": ["alignbatch-worker", "--", "alignbatch-index", "-i", src, "-o", index],
        "alignstats": [
            "alignbatch-worker",
            "--index",
            index,
            "--",
            "alignstats",
            "-C",
            "-i",
            src,
            "-o",
            report,
        ],
        "summary": [
            *("alignbatch-worker", "--", "alignbatch-summary", "--report", report, "--output", row),
            *("--meta", "run_id=r1", "--meta", "sample=s1", "--meta", f"input_uri={src}"),
        ],
    }
    job_ids: dict[str, str] = {}
    previous: list[dict[str, str]] = []
    for step in ("index", "alignstats", "summary"):
        job_ids[step] = batch.submit_job(
            jobName=f"s1-r1-{step}",
            jobQueue=queue,
            jobDefinition=defs[step],
            dependsOn=previous,
            containerOverrides={"command": commands[step]},
        )["jobId"]
        previous = [{"jobId": job_ids[step]}]

    deadline = time.monotonic() + 600
    while True:
        jobs = {j["jobName"]: j for j in batch.describe_jobs(jobs=list(job_ids.values()))["jobs"]}
        states = {name: j["status"] for name, j in jobs.items()}
        if all(s in ("SUCCEEDED", "FAILED") for s in states.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    try:
        assert states == {f"s1-r1-{s}": "SUCCEEDED" for s in job_ids}, states
        body = s3.get_object(Bucket="results", Key="alignbatch/reports/s1.bam.alignstats.json")["Body"].read()
        assert body.split(b"\n")[3:] == (GOLDEN / "i_edge_bam__C.json").read_bytes().split(b"\n")[3:]
        summary = json.loads(s3.get_object(Bucket="results", Key="alignbatch/rows/r1.json")["Body"].read())
        assert summary["run_id"] == "r1" and summary["sample"] == "s1"
        events = logs.filter_log_events(logGroupName="/aws/batch/job")["events"]
        # moto stores each container log line with its timestamp; the worker logs one JSON object per line
        starts = [e["message"] for e in events if '"event": "tool_start"' in e["message"]]
        assert any('"engine_path": "/opt/alignstats/bin/alignstats"' in m for m in starts), starts
    finally:
        for name in podman("ps", "-a", "--format", "{{.Names}}", check=False).stdout.split():
            if name.startswith("s1-r1-"):
                podman("rm", "-f", name, check=False)
