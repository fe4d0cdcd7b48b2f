"""One large file, fast (#17): the engine on one and two cores next to samtools and the real alignstats.

Usage: python benchmarks/engine_cores.py DIR [--bam e_large.bam] [--repeat 5] [--only=-C,...]
       [--alignstats PATH]   (default: .tools/alignstats/alignstats of this checkout, as the tests build it)

Runs, in ONE session and interleaved round by round (so a neighbour's load hits every command alike):
- one core, `taskset -c 0`: the engine (ALIGNBATCH_ENGINE_CPUS=1) and `samtools flagstat -@1`;
- two cores: the engine with ALIGNBATCH_ENGINE_CPUS=2 (contig-parallel through the index, in the pool
  its kernels call for: processes with the ahead-of-time kernels), the engine streaming the same BAM
  from stdin (cores only for inflate), `samtools flagstat -@2`;
- the same engine with its numba JIT kernels (ALIGNBATCH_ENGINE_AOT=0; threads on two cores), which is
  what runs when no ahead-of-time build matches (worker/engine/aot.py);
- `samtools stats`, the real alignstats and alignstats-mt -p (built from the vendored source).
Prints which kernels the engine loads, the median wall and that run's CPU (user+sys) per command, the
load before and after, the issue's ratios (one core: engine <= 1.5x flagstat; two cores: >= 1.7x the
engine's own one-core speed) and whether every engine run wrote the same report bytes. The engine runs
from this checkout (`python -m worker.engine.cli`, PYTHONPATH = the repository; `make setup` builds its
ahead-of-time kernels). Figures only; nothing here is a test.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procstat import load_text

ROOT = Path(__file__).resolve().parents[1]
ENGINE = [sys.executable, "-m", "worker.engine.cli"]
CONFIGS = {"-C": ["-C"], "-t targets.bed": ["-t", "targets.bed"]}


@dataclass
class Run:
    wall: float
    cpu: float
    code: int


def timed(cmd: list[str], cwd: Path, env: dict[str, str], stdin: Path | None = None) -> Run:
    start = time.perf_counter()
    with open(stdin or os.devnull, "rb") as fin:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
    wall = time.perf_counter() - start
    if proc.returncode:
        print(
            f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.decode(errors='replace')}",
            file=sys.stderr,
        )
    return Run(wall, float("nan"), proc.returncode)


def measured(cmd: list[str], cwd: Path, env: dict[str, str], stdin: Path | None = None) -> Run:
    """Wall and CPU of one command (children's rusage delta: the command and its threads/processes)."""
    before = os.times()
    r = timed(cmd, cwd, env, stdin)
    after = os.times()
    r.cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return r


def median(runs: list[Run]) -> Run:
    mid = sorted(runs, key=lambda r: r.wall)[len(runs) // 2]
    return Run(statistics.median(r.wall for r in runs), mid.cpu, max(r.code for r in runs))


def same_reports(outs: list[Path], bam: str, size: int) -> bool:
    """Byte-identical reports; the stdin run names its input "-" with size 0, as the tool does."""
    if not all(p.exists() for p in outs):
        return False
    texts = [
        p.read_bytes()
        .replace(b'"InputFileName": "-"', b'"InputFileName": "%s"' % bam.encode())
        .replace(b'"InputFileSize": 0,', b'"InputFileSize": %d,' % size)
        for p in outs
    ]
    return len(set(texts)) == 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--bam", default="e_large.bam")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", default=None, help=f"engine configs, of {list(CONFIGS)}")
    ap.add_argument(
        "--alignstats",
        type=Path,
        default=Path(__file__).resolve().parents[1] / ".tools" / "alignstats" / "alignstats",
        help="the real alignstats (scripts/build-alignstats.sh builds it there)",
    )
    args = ap.parse_args()
    samtools = shutil.which("samtools")
    real = Path(args.alignstats)
    configs = {k: v for k, v in CONFIGS.items() if args.only is None or k in args.only.split(",")}
    base_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base_env.pop("ALIGNBATCH_ENGINE_CPUS", None)
    one = {**base_env, "ALIGNBATCH_ENGINE_CPUS": "1"}
    two = {**base_env, "ALIGNBATCH_ENGINE_CPUS": "2"}
    jit_one = {**one, "ALIGNBATCH_ENGINE_AOT": "0"}
    jit_two = {**two, "ALIGNBATCH_ENGINE_AOT": "0"}
    tmp = Path(tempfile.mkdtemp(prefix="engine-cores-"))
    bam = args.bam
    commands: dict[str, tuple[list[str], dict[str, str], Path | None]] = {}
    outputs: dict[str, list[Path]] = {}
    modes = (
        ("1 core (taskset -c 0)", ["taskset", "-c", "0"], one, False),
        ("2 cores", [], two, False),
        ("stdin (inflate threads)", [], one, True),
        ("JIT kernels, 1 core (taskset -c 0)", ["taskset", "-c", "0"], jit_one, False),
        ("JIT kernels, 2 cores (threads)", [], jit_two, False),
    )
    for label, opts in configs.items():
        outputs[label] = []
        for n, (mode, prefix, env, stdin) in enumerate(modes):
            out = tmp / f"{label.replace(' ', '_')}_{n}.json"
            outputs[label].append(out)
            source = ["-j", "bam"] if stdin else ["-i", bam]
            commands[f"engine {label}, {mode}"] = (
                [*prefix, *ENGINE, *opts, *source, "-o", str(out)],
                env,
                args.dir / bam if stdin else None,
            )
    if samtools:
        commands["samtools flagstat -@1, 1 core (taskset -c 0)"] = (
            ["taskset", "-c", "0", samtools, "flagstat", "-@1", bam],
            base_env,
            None,
        )
        commands["samtools flagstat -@2"] = ([samtools, "flagstat", "-@2", bam], base_env, None)
        commands["samtools stats"] = ([samtools, "stats", bam], base_env, None)
    if real.exists():
        for label, opts in configs.items():
            commands[f"alignstats {label}"] = (
                [str(real), *opts, "-i", bam, "-o", str(tmp / "real.json")],
                base_env,
                None,
            )
        mt = real.with_name("alignstats-mt")
        if mt.exists():
            commands["alignstats-mt -C -p"] = (
                [str(mt), "-C", "-p", "-i", bam, "-o", str(tmp / "mt.json")],
                base_env,
                None,
            )
    kernels = subprocess.run(
        [sys.executable, "-c", "from worker.engine import aot; print(aot.describe())"],
        env=base_env, capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    print(
        f"case {args.dir / bam}; repeat {args.repeat}, interleaved; cpus={os.cpu_count()}; "
        f"engine kernels: {kernels}; load before {load_text()}"
    )
    subprocess.run(["cat", str(args.dir / bam)], stdout=subprocess.DEVNULL, check=False)  # page cache
    subprocess.run([*ENGINE, "-h"], env=base_env, stderr=subprocess.DEVNULL, check=False)  # numba cache
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    try:
        for _ in range(args.repeat):
            for name, (cmd, env, stdin) in commands.items():
                runs[name].append(measured(cmd, args.dir, env, stdin))
        identical = {
            label: same_reports(outs, bam, (args.dir / bam).stat().st_size) for label, outs in outputs.items()
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load after {load_text()}")
    med = {name: median(r) for name, r in runs.items()}
    print(f"\n{'command':<48} {'wall s':>7} {'cpu s':>7}   (median of {args.repeat}; cpu of that run)")
    for name, m in med.items():
        print(f"{name:<48} {m.wall:7.2f} {m.cpu:7.2f}{'  FAILED' if m.code else ''}")
    print()
    flag1 = med.get("samtools flagstat -@1, 1 core (taskset -c 0)")
    for label in configs:
        e1 = med[f"engine {label}, 1 core (taskset -c 0)"]
        e2 = med[f"engine {label}, 2 cores"]
        j1 = med[f"engine {label}, JIT kernels, 1 core (taskset -c 0)"]
        j2 = med[f"engine {label}, JIT kernels, 2 cores (threads)"]
        if flag1:
            print(
                f"{label}: one core engine/flagstat -@1 = {e1.wall / flag1.wall:.2f} (target <= 1.50); "
                f"JIT kernels {j1.wall / flag1.wall:.2f}"
            )
        print(
            f"{label}: two cores speed-up over one core = {e1.wall / e2.wall:.2f} (target >= 1.70); "
            f"JIT kernels {j1.wall / j2.wall:.2f}"
        )
        print(f"{label}: reports of every engine run identical: {identical[label]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
