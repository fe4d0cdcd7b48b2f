"""A tool's process tree, so stopping the tool stops what it started (the built-in engine's pool workers).

The tool stays in the worker's process group: a container kill, a terminal's Ctrl-C and the test
harness's group SIGKILL still reach everything. What the group does not give is "the tool and its
children, not the worker", which is what stopping a tool needs. So the worker takes the tree from
/proc (`/proc/PID/task/TID/children`) before it signals, and each process is identified by its pid and
its start time (field 22 of /proc/PID/stat): a process that died and whose pid was reused is never
signalled. Linux only; elsewhere the tree is the tool alone.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Proc:
    pid: int
    started: int  # clock ticks after boot


def start_time(stat: str) -> int:
    """Field 22 of a /proc/PID/stat line; the command name (field 2) may hold spaces and parentheses,
    so fields are counted after its last ')'."""
    rest = stat[stat.rindex(")") + 2 :].split()
    return int(rest[19])  # fields 3.. are rest[0..]; field 22 is rest[19]


def _proc(pid: int, proc: Path = PROC) -> Proc | None:
    try:
        return Proc(pid, start_time((proc / str(pid) / "stat").read_text()))
    except (OSError, ValueError, IndexError):
        return None


def _children(pid: int, proc: Path = PROC) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in (proc / str(pid) / "task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                found += [int(p) for p in (task / "children").read_text().split()]
    return found


def tree(pid: int, proc: Path = PROC) -> list[Proc]:
    """pid and every descendant alive now, parents before children."""
    out: list[Proc] = []
    todo = [pid]
    seen: set[int] = set()
    while todo:
        current = todo.pop(0)
        if current in seen:
            continue
        seen.add(current)
        found = _proc(current, proc)
        if found is None:
            continue
        out.append(found)
        todo += _children(current, proc)
    return out


def signal_all(procs: list[Proc], signum: int, proc: Path = PROC) -> int:
    """Send signum to each process still alive as itself (same start time); returns how many."""
    sent = 0
    for p in procs:
        now = _proc(p.pid, proc)
        if now is None or now.started != p.started:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p.pid, signum)
            sent += 1
    return sent
