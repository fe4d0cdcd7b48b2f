"""Memory of a running child process from /proc/PID/status (Linux), shared by the benchmarks.

VmHWM is the kernel's own peak resident set, so sampling it loses nothing but the last moments;
RssAnon (private) and RssFile (shared libraries, mapped files) are current values, so callers keep
their own running maximum. Not ru_maxrss: it keeps the peak of the forked Python child before exec.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB_PER_KIB = 1 / 1024


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
