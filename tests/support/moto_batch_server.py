"""The e2e AWS stand-in: one moto server process whose Batch really runs jobs, behind fault injection.

    python -m tests.support.moto_batch_server --ready-file FILE [--scratch DIR] [--max-concurrent N]

It listens on three loopback ports sharing one moto state, so faults can be aimed at one party:
`clean` (the test harness itself: set-up and assertions never see a fault), `controller` (the controller
daemon) and `jobs` (every Batch job's AWS_ENDPOINT_URL). The chosen ports are written to the ready file
as JSON once all three accept connections.

Admin API (JSON, on every port, never faulted):
  GET  /_harness/health                      → {"ok": true}
  GET  /_harness/faults                      → plan, injected counts, request counts
  PUT  /_harness/faults   {"seed", "rules"}  → replace the fault plan (see faults.Rule)
  POST /_harness/faults/reset-counts
  GET  /_harness/runs                        → every local process started for a Batch job
  PUT  /_harness/jobs     {"max_concurrent", "env_rules": [{"match", "env"}]}
  POST /_harness/batch/forget {"job_id"}     → Batch "forgets" a job (as AWS does ~24 h after it ends;
                                               moto has no such call); a running one is killed first
  POST /_harness/jobs/crash {"job_id"}       → the job's process dies of SIGKILL (as an out-of-memory
                                               kill would): the attempt fails with 137 and the job's
                                               retry strategy decides whether it runs again
  POST /_harness/reset                       → moto reset + runs + faults cleared
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.faults import Environ, FaultInjector, FaultPlan, StartResponse, WsgiApp
from tests.support.localdocker import ESSENTIAL_EXIT, EnvRule, LocalDockerClient, Settings

CHANNELS = ("clean", "controller", "jobs")
REGION = "us-east-1"


def _install_local_docker(client: LocalDockerClient) -> None:
    """Make every moto Batch job use our client: DockerModel.docker_client is where moto looks it up."""
    from moto.utilities.docker_utilities import DockerModel

    DockerModel.docker_client = property(lambda self: client)  # type: ignore[assignment,method-assign]


def _patch_describe() -> None:
    """describe_jobs as AWS answers it: moto omits container.exitCode (only list_jobs has it) and the
    statusReason of a container that exited non-zero."""
    from moto.batch.models import Job

    original = Job.describe

    def describe(self: Any) -> dict[str, Any]:
        result = original(self)
        if self.job_stopped and self.exit_code is not None:
            result.setdefault("container", {})["exitCode"] = self.exit_code
            for attempt in result.get("attempts") or []:
                attempt.setdefault("container", {})["exitCode"] = self.exit_code
            if result.get("status") == "FAILED" and not result.get("statusReason"):
                result["statusReason"] = ESSENTIAL_EXIT
        return result

    Job.describe = describe  # type: ignore[method-assign]


def _patch_submit() -> None:
    """A SubmitJob that fails validation leaves nothing behind, as in AWS.

    moto appends the new job to its queue before validating the tags, so a rejected submission leaves a
    phantom that ListJobs finds (by name) but DescribeJobs never returns; validate first instead.
    """
    from moto.batch.exceptions import ValidationError
    from moto.batch.models import BatchBackend

    original = BatchBackend.submit_job

    def submit_job(self: Any, *args: Any, **kwargs: Any) -> Any:
        tags = kwargs.get("tags") or {}
        error = self.tagger.validate_tags(self.tagger.convert_dict_to_tags_input(tags), 50)
        if error:
            raise ValidationError(error)
        return original(self, *args, **kwargs)

    BatchBackend.submit_job = submit_job  # type: ignore[method-assign]


def _patch_array_dependencies() -> None:
    """N_TO_N as AWS does it: child i of an array that depends N_TO_N on another array waits for that
    array's child i only. moto copies the parent's dependsOn to every child and waits for the whole
    upstream array, whose parent it never marks FAILED, so one failed upstream child would hold every
    downstream child PENDING forever."""
    from moto.batch.models import Job

    original = Job._wait_for_dependencies

    def wait(self: Any) -> bool:
        index = (self.array_properties or {}).get("index")
        if index is not None and self.depends_on:
            self.depends_on = [
                {**d, "jobId": f"{d['jobId']}:{index}"} if d.get("type") == "N_TO_N" else d
                for d in self.depends_on
            ]
        return bool(original(self))

    Job._wait_for_dependencies = wait  # type: ignore[method-assign]


# SubmitJob's own retryStrategy, by job id: moto accepts it and ignores it (EMULATION.md).
_SUBMITTED_RETRY: dict[str, dict[str, Any]] = {}


def _patch_submit_retry_strategy() -> None:
    """Keep the retryStrategy a SubmitJob names (the shard array's, #17), which overrides the job
    definition's in AWS; moto's responses never pass it on."""
    from moto.batch.responses import BatchResponse

    original = BatchResponse.submitjob

    def submitjob(self: Any) -> str:
        body = original(self)
        strategy = self._get_param("retryStrategy")
        if strategy:
            _SUBMITTED_RETRY[json.loads(body)["jobId"]] = strategy
        return body

    BatchResponse.submitjob = submitjob  # type: ignore[method-assign]


def _retry_strategy(job_id: str) -> dict[str, Any] | None:
    parent = job_id.split(":")[0]
    if parent in _SUBMITTED_RETRY:
        return _SUBMITTED_RETRY[parent]
    job = _batch_backend()._jobs.get(parent)
    return job.job_definition.retry_strategy if job is not None else None


def settle_array_parents() -> None:
    """An array parent as AWS ends it: FAILED once its children have all ended and one failed (moto only
    ever marks it SUCCEEDED, and only when it is described, so a job waiting on it would wait forever)."""
    for job in list(_batch_backend()._jobs.values()):
        children = job._child_jobs
        if not children or job.job_stopped:
            continue
        if all(c.job_stopped for c in children):
            failed = sum(1 for c in children if c.status == "FAILED")
            if failed:
                job.job_stopped_reason = f"Array Child Job failed ({failed} of {len(children)})"
            job.job_started_at = min(c.job_started_at for c in children)  # moto leaves the epoch
            job._mark_stopped(success=not failed)


def _settle_forever() -> None:
    while True:
        time.sleep(0.5)
        try:
            settle_array_parents()
        except Exception:
            continue


def _batch_backend() -> Any:
    from moto.batch.models import batch_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    return batch_backends[DEFAULT_ACCOUNT_ID][REGION]


def forget_job(job_id: str, client: LocalDockerClient) -> bool:
    """Remove a job from moto's Batch entirely, so describe/list no longer know it."""
    backend = _batch_backend()
    job = backend._jobs.get(job_id)
    if job is None:
        return False
    job.stop = True
    client.kill_job(job_id)
    backend._jobs.pop(job_id, None)
    if job in job.job_queue.jobs:
        job.job_queue.jobs.remove(job)
    return True


class Admin:
    def __init__(self, faults: FaultInjector, client: LocalDockerClient, moto_app: WsgiApp) -> None:
        self.faults = faults
        self.client = client
        self.moto_app = moto_app

    def __call__(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ["PATH_INFO"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
        try:
            result = self.route(method, path, body)
        except (KeyError, TypeError, ValueError) as exc:
            return _reply(start_response, "400 Bad Request", {"error": str(exc)})
        if result is None:
            return _reply(start_response, "404 Not Found", {"error": f"no admin route {method} {path}"})
        return _reply(start_response, "200 OK", result)

    def route(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if path == "/_harness/health":
            return {"ok": True, "pid": os.getpid()}
        if path == "/_harness/faults" and method == "GET":
            return self.faults.snapshot()
        if path == "/_harness/faults" and method == "PUT":
            self.faults.configure(FaultPlan.from_json(body))
            return self.faults.snapshot()
        if path == "/_harness/faults/reset-counts" and method == "POST":
            self.faults.reset_counts()
            return {"ok": True}
        if path == "/_harness/runs" and method == "GET":
            with self.client._lock:
                runs = [r.to_json() for r in self.client.runs]
            return {"runs": runs}
        if path == "/_harness/jobs" and method == "PUT":
            rules = body.get("env_rules")
            self.client.configure(
                max_concurrent=body.get("max_concurrent"),
                env_rules=[EnvRule(**r) for r in rules] if rules is not None else None,
            )
            return {"ok": True}
        if path == "/_harness/batch/forget" and method == "POST":
            return {"forgotten": forget_job(body["job_id"], self.client)}
        if path == "/_harness/jobs/crash" and method == "POST":
            return {"crashed": self.client.crash_job(body["job_id"])}
        if path == "/_harness/reset" and method == "POST":
            self.client.reset()
            self.faults.configure(FaultPlan())
            self.faults.reset_counts()
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()
            return {"ok": True}
        return None


def _reply(start_response: StartResponse, status: str, data: dict[str, Any]) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def build_app(faults: FaultInjector, client: LocalDockerClient, channel: str, moto_app: WsgiApp) -> WsgiApp:
    admin = Admin(faults, client, moto_app)
    faulted = faults.wrap(moto_app, channel) if channel != "clean" else moto_app

    def app(environ: Environ, start_response: StartResponse) -> Any:
        if environ.get("PATH_INFO", "").startswith("/_harness/"):
            return admin(environ, start_response)
        return faulted(environ, start_response)

    return app


def serve(ready_file: Path, scratch: Path, max_concurrent: int, host: str = "127.0.0.1") -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    faults = FaultInjector()
    client = LocalDockerClient(
        Settings(scratch_root=scratch, max_concurrent=max_concurrent, retry_lookup=_retry_strategy)
    )
    _install_local_docker(client)
    _patch_describe()
    _patch_submit()
    _patch_array_dependencies()
    _patch_submit_retry_strategy()
    threading.Thread(target=_settle_forever, name="array-parents", daemon=True).start()
    moto_app = DomainDispatcherApplication(create_backend_app)

    servers = {}
    for channel in CHANNELS:
        server = make_server(
            host,
            0,
            build_app(faults, client, channel, moto_app),
            threaded=True,
            request_handler=MotoRequestHandler,
        )
        servers[channel] = server
    ports = {channel: int(server.server_address[1]) for channel, server in servers.items()}
    client.settings.endpoint_url = f"http://{host}:{ports['jobs']}"
    os.environ["MOTO_PORT"] = str(ports["clean"])

    threads = [
        threading.Thread(target=s.serve_forever, daemon=True, name=f"serve-{c}") for c, s in servers.items()
    ]
    for thread in threads:
        thread.start()
    for port in ports.values():
        with urllib.request.urlopen(f"http://{host}:{port}/_harness/health", timeout=10) as resp:
            resp.read()
    tmp = ready_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "host": host, "ports": ports}))
    tmp.replace(ready_file)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        if os.getppid() == 1:  # the test process died without stopping us
            break
    client.reset()
    for server in servers.values():
        server.shutdown()
    time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/alignbatch-e2e-scratch"))
    parser.add_argument("--max-concurrent", type=int, default=4)
    args = parser.parse_args(argv)
    args.scratch.mkdir(parents=True, exist_ok=True)
    serve(args.ready_file, args.scratch, args.max_concurrent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
