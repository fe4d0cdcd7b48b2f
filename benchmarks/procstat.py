"""Memory of a running child process from /proc/PID/status (Linux), shared by the benchmarks.

`measure()` runs one command and returns its wall, CPU and memory (benchmarks/engine.py, genome_scale.py).

VmHWM is the kernel's own peak resident set, so sampling it loses nothing but the last moments;
RssAnon (private) and RssFile (shared libraries, mapped files) are current values, so callers keep
their own running maximum. Not ru_maxrss: it keeps the peak of the forked Python child before exec.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

MIB_PER_KIB = 1 / 1024
SAMPLE_EVERY = 0.002


@dataclass(frozen=True)
class Memory:
    hwm_kib: int = 0
    anon_kib: int = 0
    file_kib: int = 0

    @property
    def hwm_mib(self) -> float:
        return self.hwm_kib * MIB_PER_KIB


def memory(pid: int) -> Memory:
    """The process's VmHWM/RssAnon/RssFile in KiB; zeros once it has gone."""
    fields = {"VmHWM:": 0, "RssAnon:": 0, "RssFile:": 0}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, rest = line.partition("\t")
                if key in fields:
                    fields[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return Memory(fields["VmHWM:"], fields["RssAnon:"], fields["RssFile:"])


def descendants(pid: int) -> list[int]:
    """The pid's children, grandchildren, ... (from /proc/PID/task/*/children)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as fh:
                    kids = [int(x) for x in fh.read().split()]
            except (OSError, ValueError):
                continue
            out += kids
            todo += kids
    return out


@dataclass
class Measure:
    wall: float
    user: float
    sys: float
    # VmHWM: the kernel's exact peak resident set of the command, read until it exits (monotone, so
    # sampling loses at most the last 2 ms). Not ru_maxrss: that keeps the peak of the forked Python
    # child before exec, which is larger than all of samtools.
    hwm_mb: float
    anon_mb: float  # sampled peak RssAnon (private)
    file_mb: float  # sampled peak RssFile (shared libraries, mapped files)
    exit_code: int
    # wait4's ru_maxrss: the largest of the command and its reaped children (a process pool's workers,
    # which VmHWM of the command alone misses); at least the pre-exec size of the forked child
    maxrss_mb: float = 0.0
    # sampled peak of the summed RssAnon of the command and all its descendants (a process pool's
    # workers each hold their own depth array); only with measure(..., tree=True)
    tree_anon_mb: float = 0.0


def measure(
    cmd: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    stdin: Path | None = None,
    tree: bool = False,
) -> Measure:
    """Run cmd (stdout discarded) and measure it: wall, user/sys CPU from wait4 (threads and reaped
    children included), peak memory sampled from /proc/PID/status every 2 ms."""
    with open(stdin or os.devnull, "rb") as fin:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        peaks = [0, 0, 0, 0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                now = memory(proc.pid)
                total = now.anon_kib
                if tree:
                    total += sum(memory(p).anon_kib for p in descendants(proc.pid))
                for i, kib in enumerate((now.hwm_kib, now.anon_kib, now.file_kib, total)):
                    peaks[i] = max(peaks[i], kib)
                time.sleep(SAMPLE_EVERY)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped: the pid stays ours
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err}", file=sys.stderr)
    return Measure(
        wall,
        usage.ru_utime,
        usage.ru_stime,
        peaks[0] / 1024.0,
        peaks[1] / 1024.0,
        peaks[2] / 1024.0,
        proc.returncode,
        usage.ru_maxrss / 1024.0,
        peaks[3] / 1024.0 if tree else 0.0,
    )


def load_text() -> str:
    """The 1, 5 and 15-minute load averages, printed next to every figure (the machine is shared)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
