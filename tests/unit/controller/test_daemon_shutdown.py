"""Stopping the scheduler while a pass wakes another loop must not deadlock.

APScheduler's shutdown(wait=True) holds its job-store lock while it waits for running passes; a poll pass
that then calls `_wake` (modify_job, which needs that lock) waited forever, and systemd killed the
controller at its stop timeout (seen once in tests/e2e/test_s7_sigterm.py: the thread dump showed the
poll pass in modify_job and the main thread in shutdown). The check runs in a child process, so a
regression shows as a timeout here instead of a hung test run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

CHILD = r"""
import threading, time
from datetime import UTC, datetime
from types import SimpleNamespace
from apscheduler.schedulers.background import BackgroundScheduler
from controller.daemon import Daemon

daemon = Daemon(SimpleNamespace(cfg=None))
sched = BackgroundScheduler(timezone="UTC")
daemon._sched = sched
in_pass, shutting_down = threading.Event(), threading.Event()

def poll_pass():
    in_pass.set()
    shutting_down.wait(10)
    deadline = time.monotonic() + 10
    while not daemon._closing and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # shutdown is now waiting for this pass, holding the job-store lock
    daemon._wake("submit")

sched.add_job(lambda: None, "interval", seconds=60, id="submit")
sched.add_job(poll_pass, "interval", seconds=60, id="poll", next_run_time=datetime.now(UTC))
sched.start()
assert in_pass.wait(10), "the pass never ran"
shutting_down.set()
daemon._close_scheduler()
print("closed")
"""


def test_a_pass_that_wakes_a_loop_during_shutdown_lets_the_scheduler_stop() -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("closed")
