"""Client side of the e2e harness: start the Batch-running moto server, steer faults, drive the controller.

Everything here talks to real processes over HTTP or signals: the moto server
(`tests.support.moto_batch_server`), the controller (`alignbatch-controller run --config FILE`) and, through
moto's Batch, the worker. Nothing is patched in the test process.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
REGION = "us-east-1"
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}

T = TypeVar("T")


class HarnessTimeout(AssertionError):
    """A bounded wait ran out; the message says what was awaited and what was last seen."""


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` and the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise HarnessTimeout(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


# -- the moto server process -----------------------------------------------------------------------
@dataclass
class MotoBatch:
    """A running `tests.support.moto_batch_server`: three endpoints over one moto state, plus admin calls."""

    workdir: Path
    max_concurrent: int = 4
    proc: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)

    def start(self, timeout: float = 60) -> MotoBatch:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready = self.workdir / "moto-ready.json"
        ready.unlink(missing_ok=True)
        log = open(self.workdir / "moto-server.log", "ab")  # noqa: SIM115 (lives as long as the process)
        env = {**os.environ, **FAKE_ENV}
        env.pop("AWS_ENDPOINT_URL", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.moto_batch_server",
                "--ready-file",
                str(ready),
                "--scratch",
                str(self.workdir / "scratch"),
                "--max-concurrent",
                str(self.max_concurrent),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def is_ready() -> dict[str, Any] | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"moto server exited with {self.proc.returncode}; see {self.workdir}/moto-server.log"
                )
            return json.loads(ready.read_text()) if ready.exists() else None

        self.ports = wait_for("the moto server's ready file", is_ready, timeout, 0.1)["ports"]
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def url(self, channel: str = "clean") -> str:
        return f"http://127.0.0.1:{self.ports[channel]}"

    # -- admin ---------------------------------------------------------------------------------
    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.url()}/_harness/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def reset(self) -> None:
        self.admin("POST", "reset", {})

    def set_faults(self, rules: list[dict[str, Any]], seed: int = 1) -> None:
        self.admin("PUT", "faults", {"seed": seed, "rules": rules})

    def clear_faults(self) -> None:
        self.set_faults([])

    def faults(self) -> dict[str, Any]:
        return self.admin("GET", "faults")

    def injected_by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.faults()["injected"]:
            counts[row["kind"]] = counts.get(row["kind"], 0) + row["count"]
        return counts

    def runs(self) -> list[dict[str, Any]]:
        return self.admin("GET", "runs")["runs"]

    def configure_jobs(
        self, max_concurrent: int | None = None, env_rules: list[dict[str, Any]] | None = None
    ) -> None:
        body: dict[str, Any] = {}
        if max_concurrent is not None:
            body["max_concurrent"] = max_concurrent
        if env_rules is not None:
            body["env_rules"] = env_rules
        self.admin("PUT", "jobs", body)

    def crash_job(self, job_id: str) -> bool:
        """Kill the job's running process (SIGKILL, exit 137) and let its retry strategy decide."""
        return bool(self.admin("POST", "jobs/crash", {"job_id": job_id})["crashed"])

    def forget_job(self, job_id: str) -> bool:
        return bool(self.admin("POST", "batch/forget", {"job_id": job_id})["forgotten"])

    # -- boto3 clients on a chosen channel -----------------------------------------------------
    def client(self, service: str, channel: str = "clean", **config: Any) -> Any:
        cfg = Config(**{"retries": {"mode": "standard", "max_attempts": 5}, **config})
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.url(channel),
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
            config=cfg,
        )


# -- Batch views ---------------------------------------------------------------------------------
def list_all_jobs(batch: Any, queue: str) -> list[dict[str, Any]]:
    """Every job moto's Batch knows in a queue, in every state (moto lists all states without jobStatus)."""
    jobs: list[dict[str, Any]] = []
    token = None
    while True:
        kwargs: dict[str, Any] = {"jobQueue": queue}
        if token:
            kwargs["nextToken"] = token
        page = batch.list_jobs(**kwargs)
        jobs.extend(page["jobSummaryList"])
        token = page.get("nextToken")
        if not token:
            return jobs


# -- the controller process ------------------------------------------------------------------------
@dataclass
class Controller:
    """`alignbatch-controller run --config FILE` as a real child process, with kill/term/restart."""

    config: Path
    workdir: Path
    env: dict[str, str]
    metrics_port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    terms: list[float] = field(default_factory=list)  # seconds each SIGTERM took to exit

    @property
    def log_path(self) -> Path:
        return self.workdir / "controller.log"

    def start(self) -> Controller:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child owns it)
        log.write(f"--- start #{self.starts + 1} at {time.time():.3f}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "alignbatch-controller"), "run", "--config", str(self.config)],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.starts += 1
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as after an OOM kill or a host crash."""
        if self.alive():
            assert self.proc is not None
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.kills += 1

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM as systemd sends it; returns the exit code, raising if it outlives `timeout`."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Ask for every thread's stack first (the daemon registers SIGUSR1 with faulthandler), so
            # the failure says where the shutdown was waiting.
            with suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            raise HarnessTimeout(
                f"controller did not exit within {timeout}s of SIGTERM; see {self.log_path}\n"
                f"{self.log_tail(60)}"
            ) from None
        self.terms.append(time.monotonic() - began)
        return code

    def stop(self) -> None:
        if self.alive():
            with suppress(HarnessTimeout):
                self.terminate(30)
        if self.alive():
            self.kill()

    def restart(self) -> Controller:
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_events(self) -> Iterator[dict[str, Any]]:
        """The controller's structlog JSON lines (other lines skipped)."""
        if not self.log_path.exists():
            return
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with suppress(json.JSONDecodeError):
                    yield json.loads(line)

    # -- metrics -----------------------------------------------------------------------------------
    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as resp:
            return resp.read().decode()

    def metrics(self) -> dict[str, float]:
        return parse_metrics(self.metrics_text())

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"controller exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=2):
                    return True
            except (urllib.error.URLError, OSError):
                return False

        wait_for("the controller's /healthz", ready, timeout, 0.2)


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format → {'name{label="v",...}': value} (pure; samples only)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        with suppress(ValueError):
            out[name] = float(value)
    return out


def metric_sum(metrics: dict[str, float], name: str, **labels: str) -> float:
    """Sum of every sample of `name` whose labels include `labels`."""
    total = 0.0
    for sample, value in metrics.items():
        base, _, rest = sample.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


# -- the ledger ------------------------------------------------------------------------------------
def read_ledger(path: Path, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Read-only query against the controller's SQLite ledger (safe while the controller runs: WAL)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(query, params)]
    finally:
        conn.close()


def create_batch_queue(mb: MotoBatch, name: str = "alignbatch-e2e") -> str:
    """A minimal Batch layer created through the API (VPC, subnet, SG, service role, CE, queue).

    Used by the harness's own tests, which must not depend on deploy/'s templates.
    """
    ec2 = mb.client("ec2")
    iam = mb.client("iam")
    batch = mb.client("batch")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName=f"{name}-sg", Description="e2e", VpcId=vpc)["GroupId"]
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "batch.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    role = iam.create_role(RoleName=f"{name}-service", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    ce = batch.create_compute_environment(
        computeEnvironmentName=f"{name}-ce",
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=role,
    )["computeEnvironmentArn"]
    del subnet, sg  # an unmanaged CE needs no network; they exist so the account looks like a real one
    batch.create_job_queue(
        jobQueueName=name,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    return name
