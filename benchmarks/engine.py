"""Benchmark the built-in alignstats engine against `samtools stats` on case e (or any BAM).

Usage: python benchmarks/engine.py DIR [--bam e_large.bam] [--repeat N] [--golden GOLDEN_DIR]

DIR holds the BAM and targets.bed (e.g. /work/large after `make_data.sh DIR --large-only`). Prints wall,
CPU (user+sys) and peak RSS per command (median wall of N runs), and the engine/samtools wall ratio for
`-C` (target: <= 2.0, measured in the same run). With --golden, checks the reports byte for byte against
GOLDEN_DIR/e_large__C.json and e_large__t.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ENGINE_CONFIGS = {
    "-C": ["-C"],
    "-C -p": ["-C", "-p"],
    "-C -W": ["-C", "-W"],
    "-A -C": ["-A", "-C"],
    "-t targets.bed": ["-t", "targets.bed"],
}
GOLDEN_NAMES = {"-C": "e_large__C.json", "-t targets.bed": "e_large__t.json"}


@dataclass
class Measure:
    wall: float
    user: float
    sys: float
    max_rss_mb: float
    exit_code: int


def measure(cmd: list[str], cwd: Path, stdout=subprocess.DEVNULL) -> Measure:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        print(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err}", file=sys.stderr)
    return Measure(wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024.0, proc.returncode)


def summarise(runs: list[Measure]) -> Measure:
    best = sorted(runs, key=lambda m: m.wall)[len(runs) // 2]
    return Measure(
        statistics.median(m.wall for m in runs),
        best.user,
        best.sys,
        max(m.max_rss_mb for m in runs),
        max(m.exit_code for m in runs),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--bam", default="e_large.bam")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--golden", type=Path, default=None)
    args = ap.parse_args()
    engine = shutil.which("alignbatch-alignstats") or str(
        Path(sys.executable).parent / "alignbatch-alignstats"
    )
    samtools = shutil.which("samtools")
    if not (args.dir / args.bam).exists():
        print(f"{args.dir / args.bam} not found", file=sys.stderr)
        return 66
    rows: list[tuple[str, Measure]] = []
    tmp = Path(tempfile.mkdtemp(prefix="engine-bench-"))
    try:
        # warm the page cache so the first timed run is not penalised (numba's cache is on disk)
        subprocess.run(["cat", args.bam], cwd=args.dir, stdout=subprocess.DEVNULL, check=False)
        golden_ok: dict[str, bool] = {}
        for label, opts in ENGINE_CONFIGS.items():
            out = tmp / (label.replace(" ", "_") + ".json")
            runs = [
                measure([engine, *opts, "-i", args.bam, "-o", str(out)], args.dir) for _ in range(args.repeat)
            ]
            rows.append((f"alignbatch-alignstats {label}", summarise(runs)))
            if args.golden and label in GOLDEN_NAMES:
                golden_ok[label] = out.read_bytes() == (args.golden / GOLDEN_NAMES[label]).read_bytes()
        if samtools:
            runs = [measure([samtools, "stats", args.bam], args.dir) for _ in range(args.repeat)]
            rows.append(("samtools stats", summarise(runs)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"case: {args.dir / args.bam}  repeat={args.repeat}  cpus={os.cpu_count()}")
    print(f"{'command':<40} {'wall s':>8} {'user s':>8} {'sys s':>7} {'peak RSS MB':>12}")
    for name, m in rows:
        print(f"{name:<40} {m.wall:8.2f} {m.user:8.2f} {m.sys:7.2f} {m.max_rss_mb:12.1f}")
    walls = dict(rows)
    if "samtools stats" in walls:
        ratio = walls["alignbatch-alignstats -C"].wall / walls["samtools stats"].wall
        cpu_ratio = (walls["alignbatch-alignstats -C"].user + walls["alignbatch-alignstats -C"].sys) / (
            walls["samtools stats"].user + walls["samtools stats"].sys
        )
        print(f"-C wall ratio engine/samtools stats: {ratio:.2f} (target <= 2.00); CPU ratio {cpu_ratio:.2f}")
    for label, ok in golden_ok.items():
        print(f"golden {GOLDEN_NAMES[label]}: {'identical' if ok else 'DIFFERENT'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
