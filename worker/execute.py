"""Running the tool: a pipe to its stdin fed by a streamed download (verified when it ends), its stderr
re-emitted as JSON log lines, and its exit code as a shell reports it (signal N -> 128+N).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import resource
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import UsageError, WorkerError
from worker import proctree
from worker.engines import BUILTIN_NAME, Engine, kernels_of
from worker.inputs import Input
from worker.transfer import StreamHandle, TransferResult, Transfers, expectation_for


class ToolRunner:
    """Starts and watches the tool of one run; `stop()` ends it whatever state it is in."""

    def __init__(self, transfers: Transfers, log: Any, record: Callable[[TransferResult], None]) -> None:
        self.transfers = transfers
        self.log = log
        self.record = record
        self.child: subprocess.Popen[bytes] | None = None
        # The first HTSlib line saying a CRAM's reference could not be found/used: (kind, detail).
        self.reference_problem: tuple[str, str] | None = None

    def stop(self) -> None:
        """SIGTERM to the tool and everything it started, SIGKILL after 10 s; then SIGKILL to whatever of
        that is left (worker/proctree.py). Without the tree, the built-in engine's forked pool workers
        would finish their piece as orphans and keep the tool's stderr open."""
        child = self.child
        if child is None or child.poll() is not None:
            return
        procs = proctree.tree(child.pid)
        if procs:
            proctree.signal_all(procs, signal.SIGTERM)
        else:  # no /proc: the tool alone
            child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        proctree.signal_all(procs[1:], signal.SIGKILL)

    def run(
        self,
        engine: Engine,
        argv: list[str],
        streamed: Input | None,
        stdout_path: Path | None,
        inherit_stdin: bool = False,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> int:
        read_fd = write_fd = -1
        stream: StreamHandle | None = None
        stdout_fh = open(stdout_path, "wb") if stdout_path is not None else None  # noqa: SIM115
        expect = None
        if streamed is not None:
            expect = expectation_for(streamed.info, sse=streamed.info.sse, streaming=True)
            if expect.algorithm is None:
                self.log.warning("verify_size_only", uri=streamed.display, reason=expect.note)
            read_fd, write_fd = os.pipe()
            # A 1 MiB pipe instead of 64 KiB: fewer wake-ups of the tool and of the writer per MB.
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 1024 * 1024)
        self.log.info(
            "tool_start",
            engine=engine.name,
            engine_version=engine.version,
            engine_path=engine.path,
            **({"engine_kernels": kernels_of(env)} if engine.name == BUILTIN_NAME else {}),
            argv=argv,
            **({"cwd": str(cwd)} if cwd is not None else {}),
        )
        started = time.monotonic()
        stderr_tail: deque[str] = deque(maxlen=5)
        try:
            self.child = subprocess.Popen(
                argv,
                stdin=read_fd if read_fd >= 0 else (None if inherit_stdin else subprocess.DEVNULL),
                stdout=stdout_fh if stdout_fh is not None else None,
                stderr=subprocess.PIPE,
                close_fds=True,
                env=env,
                cwd=cwd,
            )
        except OSError as exc:
            raise UsageError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
        finally:
            if read_fd >= 0:
                os.close(read_fd)
            if stdout_fh is not None:
                stdout_fh.close()
        forwarder = threading.Thread(target=self._forward_stderr, args=(self.child, stderr_tail), daemon=True)
        forwarder.start()
        stream_error: WorkerError | None = None
        try:
            if streamed is not None and expect is not None:
                stream = self.transfers.start_stream(streamed.info, write_fd, expect)
                while True:
                    if stream.done():
                        break
                    if self.child.poll() is not None:
                        break
                    time.sleep(0.05)
                os.close(write_fd)  # EOF for the tool (or EPIPE for a download still writing)
                write_fd = -1
            rc = self._wait_child()
            if stream is not None:
                if rc != 0 and not stream.done() and stream.remaining > drain_limit():
                    # The tool failed early and too much is left to check whether the bytes it saw
                    # were intact: its own exit code stands.
                    stream.cancel()
                else:
                    try:
                        self.record(stream.finish())
                    except WorkerError as exc:
                        stream_error = exc
        finally:
            if write_fd >= 0:
                os.close(write_fd)
        forwarder.join(timeout=5)
        seconds = time.monotonic() - started
        code = rc if rc >= 0 else 128 - rc  # killed by signal N → 128+N, as a shell reports it
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.log.info(
            "tool_run",
            engine=engine.name,
            engine_version=engine.version,
            exit_code=code,
            seconds=round(seconds, 3),
            # Every reaped child so far: the tool and the processes it waited for (the version probe
            # before it is a few ms); with `seconds`, how many cores the tool kept busy.
            tool_cpu_seconds=round(children.ru_utime + children.ru_stime, 3),
            # Largest child so far: the tool (the version probe before it is tiny).
            tool_max_rss_mb=round(children.ru_maxrss / 1024, 1),
            stderr_tail=list(stderr_tail),
        )
        if stream_error is not None:
            # Corrupted or failed transfer: what the tool saw was not the object, whatever it said.
            raise stream_error
        return code

    def _wait_child(self) -> int:
        assert self.child is not None
        while True:
            try:
                return self.child.wait(timeout=0.2)  # short waits keep signal handling prompt
            except subprocess.TimeoutExpired:
                continue

    def _forward_stderr(self, child: subprocess.Popen[bytes], tail: deque[str]) -> None:
        assert child.stderr is not None
        for raw in child.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                tail.append(line)
                self.log.info("tool_stderr", line=line)
                if self.reference_problem is None:
                    self.reference_problem = reference_problem(line)


# HTSlib's words (1.16 to 1.24) when a CRAM slice cannot be decoded for want of its reference.
_REF_PROBLEMS = (
    ("missing", re.compile(r'Failed to populate reference "(?P<detail>[^"]*)"')),
    ("missing", re.compile(r"Unable to fetch reference #?(?P<detail>\S+)")),
    ("mismatch", re.compile(r"MD5 checksum reference mismatch for ref (?P<detail>.*)")),
)


def reference_problem(line: str) -> tuple[str, str] | None:
    """("missing", "chr1") / ("mismatch", "...") for an HTSlib stderr line about a CRAM reference."""
    for kind, pattern in _REF_PROBLEMS:
        m = pattern.search(line)
        if m:
            return kind, m.group("detail").split(":", 1)[0] if kind == "missing" else m.group("detail")
    return None


# REF_PATH entries that reach the network: what HTSlib's tokeniser (cram/open_trace_file.c) treats as a
# URL (`http:`, `https:`, `ftp:`, optionally after `|` or `URL=`), and any other `scheme://` (written
# `s3:://b` in REF_PATH, served by an hfile plugin).
_URL_START = re.compile(r"(?:\||URL=)?(?:https?|ftp):", re.IGNORECASE)
_NETWORK_ENTRY = re.compile(r"(?:\||URL=)?(?:https?|ftp):|[A-Za-z][A-Za-z0-9+.\-]*://", re.IGNORECASE)


def split_ref_path(value: str) -> list[str]:
    """REF_PATH's entries as HTSlib's `tokenise_search_path` reads them: `:`-separated, `::` a literal
    colon, and the colons of a URL's scheme and `host:port` kept inside its entry."""
    entries: list[str] = []
    current = ""
    i, n = 0, len(value)
    while i < n:
        if value.startswith("::", i):
            current += ":"
            i += 2
            continue
        m = _URL_START.match(value, i) if (i == 0 or value[i - 1] == ":") else None
        if m is not None:
            current += value[i : m.end()]
            i = m.end()
            if value.startswith(":", i):
                i += 1
            for _ in range(2):
                if value.startswith("/", i):
                    current += "/"
                    i += 1
            host_end = i + 1
            while host_end < n and value[host_end] not in ":/":
                host_end += 1
            current += value[i : host_end + 1]  # the host and the ':' of host:port (or the '/')
            i = host_end + 1
            if value.startswith(":", i):
                i += 1
            continue
        if value[i] == ":":
            entries.append(current)
            current = ""
        else:
            current += value[i]
        i += 1
    entries.append(current)
    return entries


def join_ref_path(entries: list[str]) -> str:
    return ":".join(e.replace(":", "::") for e in entries)


def reference_environment(base: dict[str, str], scratch: Path, log: Any) -> dict[str, str]:
    """The tool's environment with CRAM reference lookups kept on this host.

    With REF_PATH unset or empty HTSlib fetches a missing reference sequence by MD5 from EBI's server
    (cram_populate_ref); in a VPC without internet that connection hangs the job until Batch kills it.
    So REF_PATH is always set, to the user's local entries (network ones stripped, logged) or to an empty
    directory in scratch, and REF_CACHE (where HTSlib would cache such downloads, by default under
    $HOME) to scratch unless the user chose one. A reference not in -T then fails at once."""
    env = dict(base)
    given = env.get("REF_PATH", "")
    entries = split_ref_path(given) if given else []
    local = [e for e in entries if not _NETWORK_ENTRY.match(e)]
    if len(local) != len(entries):
        log.warning(
            "ref_path_network_stripped",
            removed=[e for e in entries if _NETWORK_ENTRY.match(e)],
            reason="CRAM references are never fetched over the network",
        )
    if any(local):
        env["REF_PATH"] = join_ref_path(local)
    else:
        empty = scratch / "ref-path"
        empty.mkdir(parents=True, exist_ok=True, mode=0o700)
        env["REF_PATH"] = str(empty)
    if not env.get("REF_CACHE"):
        env["REF_CACHE"] = str(scratch / "ref-cache" / "%2s" / "%2s" / "%s")
    return env


def drain_limit() -> int:
    """After a tool failure, how many unread streamed bytes to still fetch and hash to tell a corrupted
    transfer (retryable) from bad data (ALIGNBATCH_STREAM_DRAIN_MAX_MIB, default 4 GiB)."""
    try:
        return int(os.environ.get("ALIGNBATCH_STREAM_DRAIN_MAX_MIB", "4096")) * 1024 * 1024
    except ValueError:
        return 4096 * 1024 * 1024
