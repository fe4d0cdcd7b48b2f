"""Local inbox source: time and walks to hand out a burst of N settled files in batches of ten.

    .venv/bin/python benchmarks/local_inbox.py --counts 1000 10000

This is what the local profile's poll loop does when N files are dropped at once. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from controller.sources.local_inbox import LocalInboxSource


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def drain(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="alignbatch-inbox-") as tmp:
        inbox = Path(tmp)
        old = time.time() - 60
        for n in range(count):
            path = inbox / f"batch{n % 10}" / f"s{n:06d}.bam"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(b"x")
            os.utime(path, (old, old))
        src = LocalInboxSource(inbox, settle_seconds=1.0, poll_seconds=0)
        cpu0, started = _cpu_seconds(), time.perf_counter()
        handed = 0
        while batch := src.receive(10):
            src.ack(batch)
            handed += len(batch)
        wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu0
        print(f"{count:>7} files: handed out {handed} in {wall:.2f} s (CPU {cpu:.2f} s), walks {src.walks}")
        # Then idle, as the daemon polls it (poll_seconds=1): what a large settled inbox costs per second.
        src.poll_seconds = 1.0
        walks0, cpu0, started = src.walks, _cpu_seconds(), time.perf_counter()
        while time.perf_counter() - started < 5:
            src.receive(10)
        idle, cpu = time.perf_counter() - started, _cpu_seconds() - cpu0
        per_s = (src.walks - walks0) / idle
        print(f"{'':>15}idle: {cpu / idle * 1000:.0f} ms CPU per second, {per_s:.1f} walks per second")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    for count in ap.parse_args().counts:
        drain(count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
