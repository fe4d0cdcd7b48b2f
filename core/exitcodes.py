"""Exit codes of the worker's own failures.

The wrapped tool's exit code passes through unchanged (alignstats uses 1 for its own errors). The
worker's codes follow sysexits(3) where one fits, so they never collide with a tool's small codes, and
each one has a single meaning an operator (and a Batch retry strategy) can act on.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    USAGE = 64  # bad worker command line or tool arguments (EX_USAGE)
    BAD_INPUT = 65  # input data is damaged or unsupported: truncated/corrupt BAM, bad BED line (EX_DATAERR)
    INPUT_MISSING = 66  # an input object or file does not exist (EX_NOINPUT)
    SCRATCH_FULL = 73  # the scratch volume cannot hold the staged inputs (EX_CANTCREAT)
    TRANSIENT_IO = 75  # S3/network error, throttling, checksum mismatch after retries (EX_TEMPFAIL)
    PERMISSION = 77  # access denied to an object or file (EX_NOPERM)
    CONFIG = 78  # the AWS configuration cannot be used: unparsable config file, unknown profile (EX_CONFIG)
    INTERNAL = 70  # a bug in the worker itself (EX_SOFTWARE)
    INTERRUPTED = 143  # SIGTERM (Batch terminate, Spot reclaim): tool stopped, uploads aborted
    INTERRUPTED_SIGINT = 130


# Worth another attempt on a fresh host: the same input may well succeed there. Batch job definitions
# use exactly this set in their retry strategy (deploy/cloudformation/batch.yaml).
RETRYABLE: frozenset[int] = frozenset({ExitCode.TRANSIENT_IO, ExitCode.SCRATCH_FULL})


def is_retryable(code: int) -> bool:
    return code in RETRYABLE
