"""The daemon's SIGTERM handler must not take a lock the main thread may already hold.

A handler runs in the main thread between two of its bytecodes. The old handler wrote a log line and set
a `threading.Event`; if the main thread was inside the log stream's write lock (or an Event's condition)
at that moment, the handler waited on itself and the daemon hung until systemd killed it. The check runs
in a child process, so a regression shows as a timeout here instead of a hung test run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

CHILD = r"""
import os, signal, sys
from pathlib import Path
import structlog
from controller.config import local_config
from controller.daemon import Daemon, build_controller
from controller.metrics import Metrics
from core.logs import configure_logging

configure_logging(stream=sys.stdout)
root = Path(sys.argv[1])
(root / "inbox").mkdir()
ctl = build_controller(local_config(root), metrics=Metrics(), with_source=False, slots=1)
daemon = Daemon(ctl)
daemon.install_signals()
write_lock = structlog._output.WRITE_LOCKS[sys.stdout]  # the lock every log line takes
with write_lock:  # the main thread is "in the middle of a log line"
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(1000):  # bytecodes: the handler runs at one of them
        if daemon.stop.is_set():
            break
assert daemon.stop.is_set() and ctl.stopping.is_set(), "handler did not run"
assert daemon.stop.reason == "SIGTERM", daemon.stop.reason
ctl.executor.close(wait=False)
print("handled")
"""


def test_sigterm_handler_takes_no_lock_the_main_thread_may_hold(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("handled")
