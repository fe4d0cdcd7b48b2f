"""The retry strategy of a job whose failed attempts are retried alone by the executor (a shard array's
children, #17), in Batch's own terms, and its evaluation for executors that apply it themselves (local).

Batch's rules (SubmitJob retryStrategy, at most 5 `evaluateOnExit` entries): the first entry whose every
condition matches decides, and with none matching the attempt is retried while attempts remain. Exit
codes may end in `*`, reasons are globs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from core.exitcodes import ExitCode

# A reclaimed host is worth another attempt; an error in the input, the command or the permissions is
# not (the same child would fail the same way). Everything else (killed, out of memory, a transient
# S3 error, an interrupted run) is retried.
_RULES: tuple[Mapping[str, str], ...] = (
    {"onStatusReason": "Host EC2*", "action": "RETRY"},
    {"onExitCode": "6*", "action": "EXIT"},  # usage 64, bad input 65, input missing 66
    {"onExitCode": "1", "action": "EXIT"},  # the tool's own error on this input
    {"onExitCode": str(int(ExitCode.PERMISSION)), "action": "EXIT"},
    {"onExitCode": str(int(ExitCode.CONFIG)), "action": "EXIT"},
)


def child_retry_strategy(attempts: int) -> dict[str, Any]:
    """SubmitJob's `retryStrategy` for `attempts` attempts in all."""
    return {"attempts": int(attempts), "evaluateOnExit": [dict(r) for r in _RULES]}


def _matches(pattern: str, value: str | None) -> bool:
    return value is not None and fnmatch.fnmatchcase(value, pattern)


def should_retry(strategy: Mapping[str, Any], attempt: int, exit_code: int | None, reason: str = "") -> bool:
    """Whether attempt number `attempt` (1-based), which ended with `exit_code` and `reason`, is
    followed by another (pure)."""
    if attempt >= int(strategy.get("attempts") or 1):
        return False
    code = None if exit_code is None else str(exit_code)
    for rule in strategy.get("evaluateOnExit") or ():
        conditions = [
            _matches(rule[k], v)
            for k, v in (("onExitCode", code), ("onStatusReason", reason), ("onReason", reason))
            if k in rule
        ]
        if conditions and all(conditions):
            return str(rule["action"]).upper() == "RETRY"
    return True
