"""`alignbatch-worker [options] -- TOOL ARGS...`: run a tool on s3:// or local files.

Exit status: the tool's own code when it ran and failed; otherwise one of core.exitcodes (64 usage,
65 bad input, 66 input missing, 70 internal, 73 scratch full, 75 transient I/O, 77 permission,
143 SIGTERM, 130 SIGINT). 73 and 75 are worth a retry. stderr carries JSON log lines only.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from types import FrameType
from typing import Any, NoReturn

from core.command import WorkerCommand
from core.errors import Interrupted, UsageError, WorkerError
from core.exitcodes import ExitCode, is_retryable
from core.logs import LOG_LEVELS, configure_logging
from core.version import __version__
from worker.array_task import resolve as resolve_array_task
from worker.run import WorkerOptions, WorkerRun


def job_cpu_seconds() -> float:
    """User + system CPU of this process and every child it reaped: what the job cost in CPU, the
    transfers, checksums and the tool included."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return round(own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, 3)


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the current program only; ru_maxrss would also count
    what the parent process had resident when it forked us."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see alignbatch-worker --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="alignbatch-worker",
        description="Run TOOL with s3:// or local file arguments: inputs are staged or streamed, outputs "
        "uploaded with checksums and encryption after the tool succeeds.",
        usage="alignbatch-worker [--stage|--stream] [--index URI] [--input ARG]... [--output ARG]... "
        "[--scratch DIR] [--sse-kms-key-id ID] -- TOOL ARGS...",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--stage", dest="mode", action="store_const", const="stage", help="always download inputs"
    )
    mode.add_argument(
        "--stream", dest="mode", action="store_const", const="stream", help="feed the main input on stdin"
    )
    p.add_argument("--index", help="index of the main BAM/CRAM input when it is not next to it")
    p.add_argument("--input", action="append", default=[], metavar="ARG", help="declare ARG as an input file")
    p.add_argument(
        "--output", action="append", default=[], metavar="ARG", help="declare ARG as an output file"
    )
    p.add_argument("--scratch", help="scratch root (default $ALIGNBATCH_SCRATCH or the system temp dir)")
    p.add_argument(
        "--sse-kms-key-id",
        default=os.environ.get("ALIGNBATCH_SSE_KMS_KEY_ID") or None,
        help="encrypt uploads with this KMS key (default $ALIGNBATCH_SSE_KMS_KEY_ID, else AES256)",
    )
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=os.environ.get("ALIGNBATCH_LOG_LEVEL", "INFO"),
        help="default $ALIGNBATCH_LOG_LEVEL or INFO",
    )
    p.add_argument("--version", action="version", version=f"alignbatch-worker {__version__}")
    return p


def parse_args(argv: Sequence[str]) -> WorkerCommand:
    """The worker's options and the tool's command line, parsed by core.command (the form the planner
    renders); --help/--version and the defaults taken from the environment are the worker's own."""
    argv = list(argv)
    own = argv[: argv.index("--")] if "--" in argv else argv
    if {"-h", "--help", "--version"} & set(own):
        build_parser().parse_args(own)  # prints the help or the version and exits
    cmd = WorkerCommand.parse(argv)
    return replace(
        cmd,
        sse_kms_key_id=cmd.sse_kms_key_id or os.environ.get("ALIGNBATCH_SSE_KMS_KEY_ID") or None,
        log_level=cmd.log_level or os.environ.get("ALIGNBATCH_LOG_LEVEL", "INFO").upper(),
    )


class _Signals:
    """SIGTERM/SIGINT raise Interrupted once in the main thread; cleanup then runs in `finally` blocks."""

    def __init__(self) -> None:
        self.received: int | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return  # already stopping; a second signal must not interrupt the cleanup
        self.received = signum
        code = ExitCode.INTERRUPTED if signum == signal.SIGTERM else ExitCode.INTERRUPTED_SIGINT
        raise Interrupted(
            f"received {signal.Signals(signum).name}: stopping the tool and aborting uploads", exit_code=code
        )


def main(argv: Sequence[str] | None = None) -> int:
    job_id = os.environ.get("AWS_BATCH_JOB_ID") or None
    attempt = os.environ.get("AWS_BATCH_JOB_ATTEMPT") or None
    log_level = os.environ.get("ALIGNBATCH_LOG_LEVEL", "INFO").upper()
    env_level_ok = log_level in LOG_LEVELS
    if not env_level_ok:
        log_level = "INFO"  # so the usage error below can still be logged
    log = configure_logging(stream=sys.stderr, level=log_level, job_id=job_id, attempt=attempt)
    signals = _Signals()
    signals.install()
    started = time.monotonic()
    run: WorkerRun | None = None
    code: int
    error: str | None = None
    try:
        if not env_level_ok:
            raise UsageError(
                f"ALIGNBATCH_LOG_LEVEL={os.environ['ALIGNBATCH_LOG_LEVEL']!r} is not a log level; "
                f"use one of {', '.join(LOG_LEVELS)}"
            )
        # An array job's child: its own command is a line of the manifest (worker/array_task.py).
        args = resolve_array_task(sys.argv[1:] if argv is None else argv, os.environ)
        cmd = parse_args(args)
        if cmd.log_level and cmd.log_level != log_level:  # logging started before the arguments were parsed
            log = configure_logging(stream=sys.stderr, level=cmd.log_level, job_id=job_id, attempt=attempt)
        opts = WorkerOptions(
            command=cmd.tool_command(),
            mode=cmd.mode or "auto",
            index=cmd.index,
            inputs=cmd.inputs,
            outputs=cmd.outputs,
            scratch=cmd.scratch,
            sse_kms_key_id=cmd.sse_kms_key_id,
            job_id=job_id,
            attempt=attempt,
        )
        run = WorkerRun(opts, log)
        code = run.execute()
    except WorkerError as exc:
        code, error = int(exc.exit_code), str(exc)
    except SystemExit as exc:  # argparse --help/--version
        return int(exc.code or 0)
    except Exception as exc:  # a bug: say what, never a traceback on the job's log
        code, error = int(ExitCode.INTERNAL), f"internal error: {type(exc).__name__}: {exc}"
    finally:
        # From here on a signal only records itself: the summary line must still be written.
        signals.received = signals.received or -1
    fields: dict[str, Any] = {
        "exit_code": code,
        "retryable": is_retryable(code),
        "seconds": round(time.monotonic() - started, 3),
        "cpu_seconds": job_cpu_seconds(),
        "worker_max_rss_mb": peak_rss_mb(),
    }
    if run is not None:
        s = run.summary
        fields.update(
            tool=os.path.basename(s.tool),
            engine=s.engine,
            engine_version=s.engine_version,
            mode=s.mode,
            bytes_in=s.bytes_in,
            bytes_out=s.bytes_out,
            tool_exit_code=s.exit_code,
        )
        if s.input_version_id:
            fields["input_version_id"] = s.input_version_id
    if error is not None:
        log.error("worker_failed", error=error, **fields)
    else:
        log.info("worker_summary", outcome="succeeded" if code == 0 else "tool_failed", **fields)
    return code


if __name__ == "__main__":
    sys.exit(main())
