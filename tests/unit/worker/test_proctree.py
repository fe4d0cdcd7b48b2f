"""worker/proctree.py: a tool's process tree from /proc, signalled without touching reused pids."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from worker import proctree

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def test_start_time_counts_fields_after_the_command_name() -> None:
    # a command name with spaces and a ')' must not shift the fields
    fields = " ".join(str(n) for n in range(3, 53))
    stat = f"4242 (odd ) name) S {fields[2:]}"
    assert proctree.start_time(stat) == 22


def test_the_tree_holds_the_children_and_grandchildren() -> None:
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(60)\n"
        "    time.sleep(60)\n"
        "print('ready', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while len(found := proctree.tree(proc.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(found) == 3 and found[0].pid == proc.pid
        assert proctree.signal_all(found, signal.SIGKILL) == 3
    finally:
        proc.kill()
        proc.wait()


def test_a_dead_or_reused_pid_is_not_signalled() -> None:
    me = proctree.tree(os.getpid())[0]
    impostor = proctree.Proc(me.pid, me.started + 1)  # same pid, another start: not ours
    assert proctree.signal_all([impostor], 0) == 0
    assert proctree.signal_all([me], 0) == 1  # signal 0: only checks
    assert proctree.tree(2**22 + 12345) == []  # no such pid
