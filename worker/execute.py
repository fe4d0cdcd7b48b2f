"""Running the tool: a pipe to its stdin fed by a streamed download (verified when it ends), its stderr
re-emitted as JSON log lines, and its exit code as a shell reports it (signal N -> 128+N).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import UsageError, WorkerError
from worker.engines import Engine
from worker.inputs import Input
from worker.transfer import StreamHandle, TransferResult, Transfers, expectation_for


class ToolRunner:
    """Starts and watches the tool of one run; `stop()` ends it whatever state it is in."""

    def __init__(self, transfers: Transfers, log: Any, record: Callable[[TransferResult], None]) -> None:
        self.transfers = transfers
        self.log = log
        self.record = record
        self.child: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        child = self.child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def run(
        self,
        engine: Engine,
        argv: list[str],
        streamed: Input | None,
        stdout_path: Path | None,
        inherit_stdin: bool = False,
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
            argv=argv,
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
        self.log.info(
            "tool_run",
            engine=engine.name,
            engine_version=engine.version,
            exit_code=code,
            seconds=round(seconds, 3),
            # Largest child so far: the tool (the version probe before it is tiny).
            tool_max_rss_mb=round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
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


def drain_limit() -> int:
    """After a tool failure, how many unread streamed bytes to still fetch and hash to tell a corrupted
    transfer (retryable) from bad data (ALIGNBATCH_STREAM_DRAIN_MAX_MIB, default 4 GiB)."""
    try:
        return int(os.environ.get("ALIGNBATCH_STREAM_DRAIN_MAX_MIB", "4096")) * 1024 * 1024
    except ValueError:
        return 4096 * 1024 * 1024
