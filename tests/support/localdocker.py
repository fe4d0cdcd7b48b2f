"""A stand-in Docker client for moto's Batch: each "container" is the job's command as a local process.

Moto's Batch model runs a job by calling `docker_client.containers.run(detach=True, image=..., command=...,
environment=..., name=..., ...)` and then polls the returned object: `reload()` and `status` until it is
no longer "running", `kill()` when the job is terminated or times out, `logs(stdout=, stderr=,
timestamps=True, since=)` (lines "<ISO-8601> <text>", shipped to CloudWatch Logs `/aws/batch/job`),
`wait()` for `{"StatusCode": n}`, and `remove()`. This module provides exactly those, so every Batch
state transition, `dependsOn`, terminate and the exit-code → FAILED rule come from moto itself while the
job's command (the real `alignbatch-worker`) runs here and talks to the moto server over HTTP.

What a container runtime would add is emulated deliberately and no more:
- the image's ENTRYPOINT (`alignbatch-worker`): a command starting with an option gets it prepended, and a
  first word naming one of the venv's console scripts is resolved to that script;
- a compute environment's capacity: at most `max_concurrent` processes run at once, the rest wait (still
  "running" from Batch's point of view, as a job on a busy host would be);
- the Batch agent's environment (AWS_BATCH_JOB_ID, AWS_BATCH_JOB_ATTEMPT, credentials, the endpoint);
- SIGKILL of the whole process group on terminate, reported as exit 137 like Docker does.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

ENTRYPOINT = "alignbatch-worker"
_UUID_LEN = 36
# Host environment a container would also see (a real image sets its own PATH/HOME/LANG).
# PYTHONPATH: a git worktree run against a shared virtualenv keeps its own code in its jobs.
_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "ALIGNBATCH_ALIGNSTATS_BIN", "PYTHONPATH")


@dataclass
class EnvRule:
    """Extra environment for jobs whose name matches `match` (a glob), applied after the job's own."""

    match: str
    env: dict[str, str]


@dataclass
class RunRecord:
    """One process started for a Batch job attempt: what the test asserts "exactly once" against."""

    job_id: str
    job_name: str
    command: list[str]
    attempt: int = 1
    started: float = 0.0
    ended: float = 0.0
    exit_code: int | None = None
    killed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "job_name": self.job_name,
            "command": self.command,
            "attempt": self.attempt,
            "started": self.started,
            "ended": self.ended,
            "exit_code": self.exit_code,
            "killed": self.killed,
        }


@dataclass
class Settings:
    endpoint_url: str = ""
    scratch_root: Path = field(default_factory=lambda: Path("/tmp/alignbatch-e2e-scratch"))
    max_concurrent: int = 4
    env_rules: list[EnvRule] = field(default_factory=list)
    base_env: dict[str, str] = field(default_factory=dict)
    # job id -> the job definition's retryStrategy (moto stores it but never applies it)
    retry_lookup: Callable[[str], dict[str, Any] | None] = lambda _job_id: None


ESSENTIAL_EXIT = "Essential container in task exited"


def _ci(rule: dict[str, Any], name: str) -> Any:
    """A retryStrategy field whatever its capitalisation (API: onExitCode; moto's CFN path: OnExitCode)."""
    for key, value in rule.items():
        if key.lower() == name.lower():
            return value
    return None


def should_retry(strategy: dict[str, Any] | None, attempt: int, exit_code: int) -> bool:
    """AWS Batch's retryStrategy for a container that exited with `exit_code` on `attempt` (pure).

    Rules are tried in order and the first whose every condition matches decides (RETRY/EXIT); with no
    matching rule Batch retries while attempts remain.
    """
    if not strategy:
        return False
    attempts = int(_ci(strategy, "attempts") or 1)
    if attempt >= attempts:
        return False
    for rule in _ci(strategy, "evaluateOnExit") or []:
        conditions = (
            (_ci(rule, "onExitCode"), str(exit_code)),
            (_ci(rule, "onStatusReason"), ESSENTIAL_EXIT),
            (_ci(rule, "onReason"), ""),
        )
        if all(pattern is None or fnmatch.fnmatchcase(value, str(pattern)) for pattern, value in conditions):
            return str(_ci(rule, "action")).upper() == "RETRY"
    return True


def resolve_command(command: list[str] | str, bin_dir: Path) -> list[str]:
    """Docker semantics for our one image: ENTRYPOINT alignbatch-worker, CMD from the job (pure)."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if len(argv) == 1 and " " in argv[0]:
        argv = shlex.split(argv[0])
    if not argv or argv[0].startswith("-"):
        argv = [ENTRYPOINT, *argv]
    candidate = bin_dir / argv[0]
    if "/" not in argv[0] and candidate.exists():
        argv[0] = str(candidate)
    return argv


_CONTAINER_JOB_ID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:-(\d+))?$")


def job_id_from_name(name: str) -> str:
    """Moto names a container f"{job_name}-{job_id}", an array child's id `<parent>:<index>` with ':'
    replaced by '-': the id back, `<parent>:<index>` for a child."""
    m = _CONTAINER_JOB_ID.search(name)
    if m is None:
        return name[-_UUID_LEN:] if len(name) > _UUID_LEN else name
    return f"{m.group(1)}:{m.group(2)}" if m.group(2) is not None else m.group(1)


class LocalContainer:
    """The subset of docker.models.containers.Container that moto's Batch uses."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        record: RunRecord,
        scratch: Path,
        slots: threading.Semaphore,
        on_exit: Callable[[RunRecord], None],
        retry: Callable[[int, int], RunRecord | None] = lambda _a, _c: None,
    ) -> None:
        self.id = record.job_id
        self.name = record.job_name
        self.attrs: dict[str, Any] = {"NetworkSettings": {"Networks": {}, "IPAddress": "127.0.0.1"}}
        self._argv = argv
        self._env = env
        self._record = record
        self._scratch = scratch
        self._slots = slots
        self._on_exit = on_exit
        self._retry = retry
        self._lines: list[tuple[float, str, str]] = []  # (time, stream, text)
        self._lock = threading.RLock()
        self._done = threading.Event()
        self._killed = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._exit_code: int | None = None
        threading.Thread(target=self._run, name=f"local-container-{record.job_id}", daemon=True).start()

    # -- life cycle ------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            code = self._attempt()
            if self._killed:
                break
            # Batch's retryStrategy, applied here because moto never applies it: a new attempt on a
            # fresh "host" (a clean scratch directory), AWS_BATCH_JOB_ATTEMPT counting up.
            nxt = self._retry(self._record.attempt, code)
            if nxt is None:
                break
            self._record.exit_code = code
            self._record.ended = time.time()
            self._record = nxt
            self._env = {**self._env, "AWS_BATCH_JOB_ATTEMPT": str(nxt.attempt)}
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch.mkdir(parents=True, exist_ok=True)
        self._finish(code)

    def _attempt(self) -> int:
        with self._slots:
            with self._lock:
                if self._killed:
                    return 137
                self._record.started = time.time()
                try:
                    self._proc = subprocess.Popen(
                        self._argv,
                        env=self._env,
                        cwd=self._scratch,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        start_new_session=True,
                    )
                except OSError as exc:
                    self._append("stderr", f"cannot start {self._argv[0]}: {exc}")
                    return 127
            readers = [
                threading.Thread(target=self._pump, args=(self._proc.stdout, "stdout"), daemon=True),
                threading.Thread(target=self._pump, args=(self._proc.stderr, "stderr"), daemon=True),
            ]
            for reader in readers:
                reader.start()
            code = self._proc.wait()
            for reader in readers:
                reader.join(timeout=10)
            return 128 - code if code < 0 else code

    def _pump(self, stream: IO[bytes] | None, name: str) -> None:
        if stream is None:
            return
        for raw in stream:
            self._append(name, raw.decode("utf-8", errors="replace").rstrip("\r\n"))

    def _append(self, stream: str, text: str) -> None:
        with self._lock:
            self._lines.append((time.time(), stream, text))

    def _finish(self, code: int) -> None:
        self._exit_code = 137 if self._killed else code
        self._record.exit_code = self._exit_code
        self._record.killed = self._killed
        self._record.ended = time.time()
        self._done.set()
        self._on_exit(self._record)

    # -- the Docker SDK surface moto calls ---------------------------------------------------------
    @property
    def status(self) -> str:
        return "exited" if self._done.is_set() else "running"

    def reload(self) -> None:
        """Status is computed live; nothing to refresh."""

    def crash(self) -> bool:
        """The process dies (SIGKILL) but the container is not stopped: the attempt fails with 137 and
        the retry strategy may start another, as for a process killed for its memory."""
        with self._lock:
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return True

    def kill(self, signal_number: int = signal.SIGKILL) -> None:
        with self._lock:
            self._killed = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal_number)

    def stop(self, timeout: int = 10) -> None:
        self.kill(signal.SIGTERM)
        if not self._done.wait(timeout):
            self.kill()

    def wait(self, timeout: float | None = None, **_: Any) -> dict[str, Any]:
        self._done.wait(timeout)
        return {"StatusCode": self._exit_code if self._exit_code is not None else -1, "Error": None}

    def logs(
        self,
        stdout: bool = True,
        stderr: bool = True,
        timestamps: bool = False,
        since: int | float | None = None,
        **_: Any,
    ) -> bytes:
        wanted = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}
        with self._lock:
            lines = list(self._lines)
        out = []
        for when, stream, text in lines:
            if stream not in wanted or (since is not None and when < since):
                continue
            if timestamps:
                stamp = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                out.append(f"{stamp} {text}")
            else:
                out.append(text)
        return ("\n".join(out) + ("\n" if out else "")).encode()

    def remove(self, **_: Any) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)


class _Containers:
    def __init__(self, client: LocalDockerClient) -> None:
        self._client = client

    def run(
        self,
        image: str,
        command: list[str] | str | None = None,
        environment: dict[str, str] | None = None,
        name: str = "",
        **_: Any,
    ) -> LocalContainer:
        return self._client.start(image, command or [], environment or {}, name)


class LocalDockerClient:
    """`client.containers.run(...)` → a local process; also keeps the record of every run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.containers = _Containers(self)
        self.bin_dir = Path(sys.executable).parent
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(settings.max_concurrent)
        self.runs: list[RunRecord] = []
        self.live: dict[str, LocalContainer] = {}

    def configure(self, max_concurrent: int | None = None, env_rules: list[EnvRule] | None = None) -> None:
        with self._lock:
            if max_concurrent is not None and max_concurrent != self.settings.max_concurrent:
                self.settings.max_concurrent = max_concurrent
                self._slots = threading.Semaphore(max_concurrent)
            if env_rules is not None:
                self.settings.env_rules = env_rules

    def reset(self) -> None:
        with self._lock:
            live = list(self.live.values())
            self.runs = []
            self.live = {}
        for container in live:
            container.kill()

    def environment_for(
        self, job_id: str, job_name: str, job_env: dict[str, str], scratch: Path
    ) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASSTHROUGH if k in os.environ}
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        env.update(self.settings.base_env)
        env.update({k: v for k, v in job_env.items() if not k.startswith("MOTO_")})
        env.update(
            {
                "AWS_BATCH_JOB_ID": job_id,
                "AWS_BATCH_JOB_ATTEMPT": "1",
                "AWS_BATCH_CE_NAME": "alignbatch-local",
                # moto never sets it (EMULATION.md): an array child's index, from its id `<parent>:<i>`.
                **({"AWS_BATCH_JOB_ARRAY_INDEX": job_id.rsplit(":", 1)[1]} if ":" in job_id else {}),
                "AWS_ENDPOINT_URL": self.settings.endpoint_url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": env.get("AWS_DEFAULT_REGION", "us-east-1"),
                "AWS_REGION": env.get("AWS_REGION", "us-east-1"),
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true",
                # The job's scratch volume: one directory per job, removed with the "container".
                "ALIGNBATCH_SCRATCH": str(scratch),
                "TMPDIR": str(scratch),
            }
        )
        for rule in self.settings.env_rules:
            if fnmatch.fnmatchcase(job_name, rule.match):
                env.update(rule.env)
        return env

    def start(
        self, image: str, command: list[str] | str, job_env: dict[str, str], name: str
    ) -> LocalContainer:
        job_id = job_id_from_name(name)
        job_name = name[: -(_UUID_LEN + 1)] if len(name) > _UUID_LEN + 1 else name
        scratch = self.settings.scratch_root / job_id.replace(":", "-")
        scratch.mkdir(parents=True, exist_ok=True)
        argv = resolve_command(command, self.bin_dir)
        record = RunRecord(job_id=job_id, job_name=job_name, command=argv)
        env = self.environment_for(job_id, job_name, job_env, scratch)
        with self._lock:
            self.runs.append(record)
            slots = self._slots

        def retry(attempt: int, code: int) -> RunRecord | None:
            if code == 0 or not should_retry(self.settings.retry_lookup(job_id), attempt, code):
                return None
            nxt = RunRecord(job_id=job_id, job_name=job_name, command=argv, attempt=attempt + 1)
            with self._lock:
                self.runs.append(nxt)
            return nxt

        container = LocalContainer(argv, env, record, scratch, slots, self._exited, retry)
        with self._lock:
            self.live[job_id] = container
        return container

    def _exited(self, record: RunRecord) -> None:
        with self._lock:
            self.live.pop(record.job_id, None)

    def crash_job(self, job_id: str) -> bool:
        with self._lock:
            container = self.live.get(job_id)
        return container.crash() if container is not None else False

    def kill_job(self, job_id: str) -> bool:
        with self._lock:
            container = self.live.get(job_id)
        if container is None:
            return False
        container.kill()
        return True
