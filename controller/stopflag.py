"""A stop request that a signal handler may raise safely.

A Python signal handler runs in the main thread between two of its bytecodes, so it may run while the
main thread holds a lock: the condition inside a `threading.Event` it is waiting on, or the log stream's
write lock. `Event.set()` or a log line from the handler would then wait on that lock forever, and the
daemon would hang in shutdown until systemd killed it. A plain attribute store takes no lock, so the
handler only does that and the loops look at the flag.
"""

from __future__ import annotations


class StopFlag:
    """The `set()`/`is_set()` half of `threading.Event`, without a lock (nobody waits on it)."""

    __slots__ = ("_set", "reason")

    def __init__(self) -> None:
        self._set = False
        self.reason = ""

    def set(self, reason: str = "") -> None:
        if not self._set:
            self.reason = reason
        self._set = True

    def is_set(self) -> bool:
        return self._set
