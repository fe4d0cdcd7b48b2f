"""Helpers for the worker's integration tests: run the real CLI as a subprocess, read its JSON logs."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@dataclass
class Result:
    code: int
    stdout: bytes
    logs: list[dict[str, Any]]
    stderr: str

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.logs if e.get("event") == name]

    @property
    def last(self) -> dict[str, Any]:
        return self.logs[-1] if self.logs else {}


def worker_env(scratch: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ALIGNBATCH_SCRATCH"] = str(scratch)
    env.pop("ALIGNBATCH_ALIGNSTATS_BIN", None)
    env.update(extra)
    return env


def parse_logs(stderr: str) -> list[dict[str, Any]]:
    out = []
    for line in stderr.splitlines():
        if line.strip():
            out.append(json.loads(line))  # every stderr line must be a JSON log event
    return out


def run_worker(args: list[str], scratch: Path, *, timeout: float = 120, **env: str) -> Result:
    proc = subprocess.run(
        [str(VENV_BIN / "alignbatch-worker"), *args],
        env=worker_env(scratch, **env),
        capture_output=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    stderr = proc.stderr.decode("utf-8", "replace")
    return Result(proc.returncode, proc.stdout, parse_logs(stderr), stderr)


PART_BYTES = 5 * 1024 * 1024  # S3's smallest part


def upload_multipart_without_checksum(bucket: str, key: str, data: bytes) -> str:
    """Upload `data` in 5 MiB parts with no checksum at all, so only the multipart ETag (the MD5 of the
    parts' MD5s, "-<parts>") describes it; returns that ETag."""
    import boto3
    from botocore.config import Config

    raw = boto3.client("s3", config=Config(request_checksum_calculation="when_required"))
    up = raw.create_multipart_upload(Bucket=bucket, Key=key)
    parts = []
    for n, start in enumerate(range(0, len(data), PART_BYTES), 1):
        body = data[start : start + PART_BYTES]
        part = raw.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=body)
        parts.append({"PartNumber": n, "ETag": part["ETag"]})
    done = raw.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": parts}
    )
    return str(done["ETag"]).strip('"')


@contextlib.contextmanager
def moto_behind(wrap: Callable[[Any], Any]) -> Iterator[str]:
    """A second endpoint onto the in-process moto server (same state), its WSGI app wrapped by `wrap`
    (e.g. `tests.support.faults.least_privilege_s3`); yields its URL."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = wrap(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="moto-behind")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
