"""sd_notify without a dependency: one datagram to $NOTIFY_SOCKET per message (READY=1, WATCHDOG=1,
STATUS=..., STOPPING=1). A no-op when not started by systemd (NOTIFY_SOCKET unset)."""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):  # abstract namespace socket
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(path)
            # Never block the main loop on a busy or stuck receiver: a dropped WATCHDOG=1 is harmless,
            # a main loop blocked in send() is not.
            sock.send(message.encode("utf-8"), socket.MSG_DONTWAIT)
        return True
    except OSError:  # includes BlockingIOError when the receiver's queue is full
        return False


def watchdog_interval() -> float | None:
    """Half the unit's WatchdogSec (systemd's advice), or None when the watchdog is off for us."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.5, int(usec) / 2_000_000)
    except ValueError:
        return None
