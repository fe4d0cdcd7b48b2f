"""Failures in flight: an upload that fails, bytes corrupted on the wire, SIGTERM during a run.

Moto never validates checksums and never fails on its own, so a small HTTP proxy sits between the
worker and the moto server and misbehaves on chosen requests (EMULATION.md suggests exactly this).
Everything still goes over real HTTP; nothing in boto3 is patched.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

from tests.support.s3proxy import read_request
from tests.support.worker_helpers import (
    PART_BYTES,
    VENV_BIN,
    parse_logs,
    run_worker,
    upload_multipart_without_checksum,
    worker_env,
)

Rule = Callable[[str, str, dict[str, str]], str | None]  # (method, path?query, headers) -> action


class FaultProxy:
    """Forwards every request to moto; `rule` may answer 500 ("fail") or flip a body byte ("corrupt")."""

    def __init__(self, upstream: str, rule: Rule, *, parts: tuple[int, int] | None = None) -> None:
        self.upstream = urllib.parse.urlparse(upstream)
        self.rule = rule
        # (part size, part count): answer `GET ?partNumber=N` with that part, as S3 does (moto
        # returns the whole object), by asking moto for the part's range.
        self.parts = parts
        self.hits: list[str] = []
        self.delayed = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def _handle(self) -> None:
                body, headers = read_request(self)
                action = proxy.rule(self.command, self.path, headers)
                path, extra = self.path, {}
                query = urllib.parse.parse_qs(urllib.parse.urlparse(path).query)
                if proxy.parts and "partNumber" in query:
                    size, count = proxy.parts
                    n = int(query["partNumber"][0])
                    path = path.split("?", 1)[0]
                    headers["Range"] = f"bytes={(n - 1) * size}-{n * size - 1}"
                    extra = {"x-amz-mp-parts-count": str(count)}
                if action == "delay":
                    proxy.hits.append(f"delay {self.command} {self.path}")
                    proxy.delayed.set()
                    time.sleep(2)
                if action == "fail":
                    proxy.hits.append(f"fail {self.command} {self.path}")
                    payload = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                    self.send_response(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                conn.request(self.command, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if action == "corrupt" and len(data) > 100:
                    proxy.hits.append(f"corrupt {self.command} {self.path}")
                    data = data[:50] + bytes([data[50] ^ 0xFF]) + data[51:]
                self.send_response(resp.status)
                for key, value in [*resp.getheaders(), *extra.items()]:
                    if key.lower() not in (
                        "transfer-encoding",
                        "connection",
                        "content-length",
                        "date",
                        "server",
                    ):
                        self.send_header(key, value)
                length = resp.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def s3(aws: str, data_dir: Path):  # type: ignore[no-untyped-def]
    client = boto3.client("s3")
    for bucket in ("inbox", "results"):
        client.create_bucket(Bucket=bucket)
    client.upload_file(str(data_dir / "h_source.bam"), "inbox", "h.bam")
    return client


def _write_tool(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "tool.py"
    script.write_text(textwrap.dedent(body))
    return script


# A tool that writes a 12 MiB output (argv[2]): three parts at ALIGNBATCH_TRANSFER_CHUNK_MIB=5.
BIG_OUTPUT_TOOL = """
import os, sys
with open(sys.argv[2], "wb") as fh:
    fh.write(os.urandom(12 * 1024 * 1024))
"""


def _nothing_left(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_failed_multipart_upload_leaves_nothing(s3, scratch: Path, tmp_path: Path, aws: str) -> None:  # type: ignore[no-untyped-def]
    tool = _write_tool(tmp_path, BIG_OUTPUT_TOOL)

    def rule(method: str, path: str, headers: dict[str, str]) -> str | None:
        return "fail" if method == "PUT" and "partNumber=2" in path else None

    out = "s3://results/big output.bin"
    with FaultProxy(aws, rule) as proxy:
        res = run_worker(
            [
                "--input",
                "s3://inbox/h.bam",
                "--output",
                out,
                "--",
                sys.executable,
                str(tool),
                "s3://inbox/h.bam",
                out,
            ],
            scratch,
            AWS_ENDPOINT_URL=proxy.url,
            ALIGNBATCH_TRANSFER_CHUNK_MIB="5",
            ALIGNBATCH_S3_MAX_ATTEMPTS="2",
        )
    assert res.code == 75, res.stderr
    assert (
        res.last["retryable"] is True
        and "upload" in res.last["error"]
        and "big output.bin" in res.last["error"]
    )
    assert any(hit.startswith("fail PUT") for hit in proxy.hits)
    _nothing_left(s3, "results")  # multipart upload aborted, no object


@pytest.mark.parametrize("mode", ["--stage", "--stream"])
def test_corrupted_download_fails_the_run(s3, scratch: Path, aws: str, mode: str) -> None:  # type: ignore[no-untyped-def]
    def rule(method: str, path: str, headers: dict[str, str]) -> str | None:
        rng = headers.get("Range", "")
        # Leave the header probe (bytes=0-...) and the EOF probe (bytes=-N) intact; corrupt later ranges.
        if method == "GET" and rng.startswith("bytes=") and not rng.startswith(("bytes=0-", "bytes=-")):
            return "corrupt"
        return None

    with FaultProxy(aws, rule) as proxy:
        res = run_worker(
            [mode, "--", "alignstats", "-C", "-i", "s3://inbox/h.bam", "-o", "s3://results/h.json"],
            scratch,
            AWS_ENDPOINT_URL=proxy.url,
            ALIGNBATCH_TRANSFER_CHUNK_MIB="1",
        )
    assert proxy.hits, "the proxy corrupted nothing"
    assert res.code == 75, res.stderr
    assert "does not match" in res.last["error"] and "s3://inbox/h.bam" in res.last["error"]
    _nothing_left(s3, "results")


def _start_tool_job(tool: Path, out: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The worker running `tool s3://inbox/h.bam OUT` in the background (for the SIGTERM tests)."""
    argv = ["--input", "s3://inbox/h.bam", "--output", out, "--", sys.executable, str(tool)]
    return subprocess.Popen(
        [str(VENV_BIN / "alignbatch-worker"), *argv, "s3://inbox/h.bam", out],
        env=env,
        stderr=subprocess.PIPE,
    )


def test_sigterm_stops_tool_aborts_and_cleans(s3, scratch: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pidfile = tmp_path / "tool.pid"
    tool = _write_tool(
        tmp_path,
        f"""
        import os, sys, time
        open({str(pidfile)!r}, "w").write(str(os.getpid()))
        open(sys.argv[2], "wb").write(b"partial")
        time.sleep(120)
        """,
    )
    out = "s3://results/never.bin"
    proc = _start_tool_job(
        tool, out, worker_env(scratch, AWS_BATCH_JOB_ID="job-term", AWS_BATCH_JOB_ATTEMPT="3")
    )
    try:
        deadline = time.monotonic() + 60
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline, "tool never started"
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        tool_pid = int(pidfile.read_text())
        assert (scratch / "alignbatch" / "job-term" / "3").exists()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    logs = parse_logs(proc.stderr.read().decode() if proc.stderr else "")
    assert code == 143
    assert logs[-1]["event"] == "worker_failed" and "SIGTERM" in logs[-1]["error"]
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # the tool was stopped (give the kernel a moment to reap it)
            os.kill(tool_pid, 0)
            time.sleep(0.1)
    assert not (scratch / "alignbatch" / "job-term").exists() or not any(
        (scratch / "alignbatch" / "job-term").rglob("*")
    )
    _nothing_left(s3, "results")


def test_sigterm_stops_the_tools_own_children_too(s3, scratch: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A tool that forked helpers (the built-in engine's process pool does) is stopped with all of them:
    the worker signals the tool's process group. The helper here even ignores SIGTERM."""
    pidfile = tmp_path / "pids"
    tool = _write_tool(
        tmp_path,
        f"""
        import os, signal, sys, time
        helper = os.fork()
        if helper == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(120)
            os._exit(0)
        open({str(pidfile)!r}, "w").write(f"{{os.getpid()}} {{helper}}")
        time.sleep(120)
        """,
    )
    proc = _start_tool_job(tool, "s3://results/never.bin", worker_env(scratch, AWS_BATCH_JOB_ID="job-kids"))
    try:
        deadline = time.monotonic() + 60
        while not pidfile.exists() or len(pidfile.read_text().split()) != 2:
            assert time.monotonic() < deadline, "tool never started"
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        pids = [int(p) for p in pidfile.read_text().split()]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)


def test_logs_are_json_only(s3, scratch: Path) -> None:  # type: ignore[no-untyped-def]
    res = run_worker(
        ["--", "alignstats", "-C", "-i", "s3://inbox/h.bam", "-o", "s3://results/h.json"], scratch
    )
    assert res.code == 0
    assert all(isinstance(json.loads(line), dict) for line in res.stderr.splitlines() if line)


def test_sigterm_during_upload_aborts_it(s3, scratch: Path, tmp_path: Path, aws: str) -> None:  # type: ignore[no-untyped-def]
    tool = _write_tool(tmp_path, BIG_OUTPUT_TOOL)

    def rule(method: str, path: str, headers: dict[str, str]) -> str | None:
        return "delay" if method == "PUT" and "partNumber=" in path else None

    out = "s3://results/interrupted.bin"
    with FaultProxy(aws, rule) as proxy:
        proc = _start_tool_job(
            tool, out, worker_env(scratch, AWS_ENDPOINT_URL=proxy.url, ALIGNBATCH_TRANSFER_CHUNK_MIB="5")
        )
        try:
            assert proxy.delayed.wait(60), "the upload never started"
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    logs = parse_logs(proc.stderr.read().decode() if proc.stderr else "")
    assert code == 143, logs
    assert "SIGTERM" in logs[-1]["error"]
    _nothing_left(s3, "results")
    assert not any((scratch / "alignbatch").rglob("*.bin"))


@pytest.mark.parametrize("corrupt", [False, True])
def test_multipart_etag_checked_part_by_part(
    s3, scratch: Path, tmp_path: Path, aws: str, corrupt: bool
) -> None:  # type: ignore[no-untyped-def]
    """An object with only a multipart ETag: each part is fetched by number and MD5-hashed by its own
    thread; the MD5 of the part digests must equal the ETag, so one flipped byte in part 2 fails (75)."""
    data = os.urandom(12 * 1024 * 1024 + 4321)
    etag = upload_multipart_without_checksum("inbox", "mp.bin", data)
    assert etag.endswith("-3")

    def rule(method: str, path: str, headers: dict[str, str]) -> str | None:
        return "corrupt" if corrupt and method == "GET" and "partNumber=2" in path else None

    out = tmp_path / "copy.bin"
    with FaultProxy(aws, rule, parts=(PART_BYTES, 3)) as proxy:
        res = run_worker(
            ["--input", "s3://inbox/mp.bin", "--output", str(out), "--", "cp", "s3://inbox/mp.bin", str(out)],
            scratch,
            AWS_ENDPOINT_URL=proxy.url,
        )
    if not corrupt:
        assert res.code == 0, res.stderr
        down = [t for t in res.events("transfer") if t["direction"] == "download"]
        assert down[0]["verified"] == "etag-md5-parts" and down[0]["bytes"] == len(data)
        assert out.read_bytes() == data
    else:
        assert proxy.hits, "the proxy corrupted nothing"
        assert res.code == 75, res.stderr
        assert "does not match" in res.last["error"] and "s3://inbox/mp.bin" in res.last["error"]
        assert not out.exists()
