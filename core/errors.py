"""The worker's own failures, each carrying the exit code an operator (and Batch's retry strategy) acts on.

Every error message is one line that names the file or object and, where there is one, the fix. The CLI
prints `str(error)` and exits with `error.exit_code`; nothing below it prints tracebacks for these.
"""

from __future__ import annotations

from core.exitcodes import ExitCode


class WorkerError(Exception):
    """Base class: a failure the worker understands, with a documented exit code."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, exit_code: ExitCode | None = None) -> None:
        # One line, always: newlines from wrapped exceptions would break log grepping.
        super().__init__(" ".join(message.split()))
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self)


class UsageError(WorkerError):
    """Bad worker command line or tool arguments."""

    exit_code = ExitCode.USAGE


class BadInput(WorkerError):
    """Input data is damaged or unsupported (truncated BAM, header without @SQ, bad BED line)."""

    exit_code = ExitCode.BAD_INPUT


class ObjectMissing(WorkerError):
    """An input object, bucket or file does not exist."""

    exit_code = ExitCode.INPUT_MISSING


class AccessDenied(WorkerError):
    """Credentials are missing or do not allow the operation."""

    exit_code = ExitCode.PERMISSION


class AwsConfigError(WorkerError):
    """The AWS configuration (config/credentials file, profile) cannot be used as it is."""

    exit_code = ExitCode.CONFIG


class TransientIOError(WorkerError):
    """Network/S3 trouble that survived botocore's retries; another attempt may well succeed."""

    exit_code = ExitCode.TRANSIENT_IO


class ChecksumMismatch(TransientIOError):
    """Bytes received differ from what the store says it holds (a corrupted transfer)."""


class ScratchFull(WorkerError):
    """The scratch volume cannot hold what has to be staged."""

    exit_code = ExitCode.SCRATCH_FULL


class Interrupted(WorkerError):
    """SIGTERM/SIGINT arrived: the tool was stopped and uploads aborted."""

    exit_code = ExitCode.INTERRUPTED


class InternalError(WorkerError):
    exit_code = ExitCode.INTERNAL
