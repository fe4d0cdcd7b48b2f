"""Fan-out of one indexed BAM (#17): N shard processes + merge against one single run.

Usage: python benchmarks/fanout.py DIR [--bam e_large.bam] [--shards 8] [--repeat 3] [--opts "-C"]
       [--model 8,24,64] [--uncapped] [--local-executor]

The shard count is what the controller would submit for `--shards N` with the index next to the BAM:
`useful_shards(index, N)`, the groups that read something and shorten the run (controller/index_layout.py).
`--uncapped` runs all N, as for a BAM whose index the plan's index step makes (empty children included).
`--local-executor` also runs the whole path, `alignbatch-controller run --local ROOT --once`, on a root
holding only this BAM and its index, with and without fan-out, and sums each job's `cpu_seconds`.

Measures, in one session (the engine from this checkout, one core per process, ALIGNBATCH_ENGINE_CPUS=1,
so the single run inflates in line as every child does):
- the single run (median wall, CPU);
- each of the N shards as its own local process, one at a time (what a Batch array child does), its
  wall and CPU; the total CPU of all shards against the single run (target <= 1.1x);
- the merge (`--merge-parts`) as a process (target <= 1 s) and, in-process, the merge itself without
  Python start-up;
- whether the merged report is byte-identical to the single run;
- a child's fixed CPU, timed on a child with nothing to read, and what the shards use beyond it;
- a model of the wall time with N = 8, 24, 64 children: each child's time = a fixed cost + a per-record
  cost (a line fitted to the measured shards' walls and records) x its records
  from the shard plan, wall = the slowest child + the merge. Batch scheduling and S3 transfer are not in
  it. Also the floor of whole-contig shards (the largest contig alone) and what an ideal split of the
  records would give.
Figures only; nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ENGINE = [sys.executable, "-m", "worker.engine.cli"]


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) of one command; CPU from the children's rusage delta."""
    before = os.times()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = os.times()
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.decode(errors='replace')}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu


def med(samples: list[tuple[float, float]]) -> tuple[float, float]:
    mid = sorted(samples)[len(samples) // 2]
    return statistics.median(s[0] for s in samples), mid[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--bam", default="e_large.bam")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--opts", default="-C")
    ap.add_argument("--model", default="8,24,64")
    ap.add_argument("--uncapped", action="store_true", help="run all N children, empty ones included")
    ap.add_argument(
        "--local-executor",
        action="store_true",
        help="also run the whole path (`alignbatch-controller run --local --once`) with and without fan-out",
    )
    args = ap.parse_args()
    from worker.cpus import with_engine_cpus
    from worker.engine.bamindex import index_path, read_index
    from worker.engine.shardplan import useful_shards
    from worker.engine.shards import load_part, merge_parts, plan_from_index

    # the tool environment the worker gives every child (one core here, one OpenBLAS thread)
    env = with_engine_cpus({**os.environ, "PYTHONPATH": str(ROOT), "ALIGNBATCH_ENGINE_CPUS": "1"})
    env.pop("AWS_BATCH_JOB_ARRAY_INDEX", None)
    opts = shlex.split(args.opts)
    bam = args.bam
    ipath = index_path(str(args.dir / bam))
    if ipath is None:
        sys.exit(f"{bam}: no index")
    index = read_index(ipath)
    n = args.shards if args.uncapped else useful_shards(index, args.shards)
    tmp = Path(tempfile.mkdtemp(prefix="fanout-"))
    asked = "" if n == args.shards else f" (asked {args.shards}; the index caps the array at {n})"
    print(
        f"case {args.dir / bam}, {args.opts}, {n} shards{asked}, repeat {args.repeat}; load {os.getloadavg()}"
    )
    single_out = tmp / "single.json"
    single = med(
        [run([*ENGINE, *opts, "-i", bam, "-o", str(single_out)], args.dir, env) for _ in range(args.repeat)]
    )
    parts = [tmp / f"part-{i}.json" for i in range(n)]
    shard_times = []
    for i in range(n):
        cmd = [
            *ENGINE,
            "--shard-of",
            str(n),
            "--shard-index",
            str(i),
            "--part-out",
            str(parts[i]),
            *opts,
            "-i",
            bam,
        ]
        shard_times.append(med([run(cmd, args.dir, env) for _ in range(args.repeat)]))
    merged_out = tmp / "merged.json"
    merge_cmd = [*ENGINE, "--merge-parts", "-o", str(merged_out), *map(str, parts)]
    merge = med([run(merge_cmd, args.dir, env) for _ in range(args.repeat)])
    t = time.perf_counter()
    merge_parts([load_part(str(p)) for p in parts])
    merge_inproc = time.perf_counter() - t
    identical = merged_out.read_bytes() == single_out.read_bytes()
    print(f"load after {os.getloadavg()}\n")
    plan = plan_from_index(index, n)
    print(f"{'':<12} {'records':>10} {'wall s':>7} {'cpu s':>7}  contigs")
    print(f"{'single run':<12} {sum(s.load for s in plan):>10,} {single[0]:7.2f} {single[1]:7.2f}")
    for shard, (w, c) in zip(plan, shard_times, strict=True):
        names = ",".join(str(t) for t in shard.tids) + (",*" if shard.unplaced else "")
        print(f"{'shard ' + str(shard.index):<12} {shard.load:>10,} {w:7.2f} {c:7.2f}  {names or '-'}")
    total_cpu = sum(c for _, c in shard_times)
    print(
        f"\nshards' total CPU {total_cpu:.2f} s = {total_cpu / single[1]:.2f}x the single run "
        "(target <= 1.10)"
    )
    print(
        f"merge: {merge[0]:.2f} s as a process ({merge[1]:.2f} s CPU; target <= 1 s), "
        f"{merge_inproc * 1000:.0f} ms of it the merge itself"
    )
    print(f"merged report byte-identical to the single run: {identical}")
    # where the extra CPU goes: each child's fixed start-up (interpreter, numpy, our modules, the header
    # and the index), measured on a child with nothing to read
    working = [c for s, (_, c) in zip(plan, shard_times, strict=True) if not s.empty]
    idle = [c for s, (_, c) in zip(plan, shard_times, strict=True) if s.empty]
    work_cpu = sum(working)
    if idle:
        print(
            f"without the {len(idle)} empty shards (nothing to read; with the index at planning the "
            f"controller does not start them): {work_cpu:.2f} s = {work_cpu / single[1]:.2f}x the single run"
        )
    # an empty group of a wide plan (groups fill in index order, so the last one is empty if any is)
    wide = 1024
    if plan_from_index(index, wide)[-1].empty:
        empty_part = tmp / "empty.json"
        empty_cmd = [*ENGINE, "--shard-of", str(wide), "--shard-index", str(wide - 1), "--part-out"]
        empty_cmd += [str(empty_part), *opts, "-i", bam]
        fixed_cpu = med([run(empty_cmd, args.dir, env) for _ in range(args.repeat)])[1]
        empty_part.unlink(missing_ok=True)
        print(
            f"fixed CPU per child {fixed_cpu:.2f} s (one with nothing to read); beyond it the shards use "
            f"{work_cpu - len(working) * fixed_cpu:.2f} s against the single run's "
            f"{single[1] - fixed_cpu:.2f} s"
        )
    else:
        print(f"fixed CPU per child: not measured (no group of a {wide}-shard plan is empty)")
    # model: fixed cost per child (the lightest shard's wall, extrapolated to 0 records) + rate x records
    loads = [s.load for s in plan if not s.empty]
    walls = [w for s, (w, _) in zip(plan, shard_times, strict=True) if not s.empty]
    if len(set(loads)) > 1:
        mean_l, mean_w = statistics.mean(loads), statistics.mean(walls)
        rate = sum((x - mean_l) * (y - mean_w) for x, y in zip(loads, walls, strict=True)) / sum(
            (x - mean_l) ** 2 for x in loads
        )
        fixed = mean_w - rate * mean_l
    else:
        rate, fixed = 0.0, walls[0]
    total = sum(s.load for s in plan)
    print(
        f"\nmodel: child = {fixed:.2f} s fixed + {rate * 1e6:.3f} s per million records; "
        f"+ merge {merge[0]:.2f} s"
    )
    print(
        f"{'N':>4} {'modelled wall s':>16} {'speed-up':>9} {'ideal split s':>14}  "
        f"(single run {single[0]:.2f} s)"
    )
    for m in (int(x) for x in args.model.split(",")):
        mp = plan_from_index(index, m if args.uncapped else useful_shards(index, m))
        wall = fixed + rate * max(s.load for s in mp) + merge[0]
        ideal = fixed + rate * total / m + merge[0]
        print(f"{m:>4} {wall:16.2f} {single[0] / wall:9.2f} {ideal:14.2f}  ({len(mp)} children)")
    largest = max(s.mapped for s in index.spans if s)
    print(f"whole-contig floor: the largest contig holds {largest / total:.0%} of the records")
    for p in [*parts, single_out, merged_out]:
        p.unlink(missing_ok=True)
    tmp.rmdir()
    if args.local_executor:
        through_local_executor(args.dir / bam, args.shards, args.repeat)
    return 0


def through_local_executor(bam: Path, shards: int, repeat: int) -> None:
    """The README's main command on a fresh root holding only this BAM and its index, with [fanout]
    set so the size asks for `shards`, and with fan-out off; each job's CPU from its worker_summary
    (`cpu_seconds`: the worker, its transfers and checksums, the tool), and the whole process tree's."""
    import json
    import math

    controller = Path(sys.executable).parent / "alignbatch-controller"
    projected = bam.stat().st_size / 1_000_000  # seconds at 1 MB/s
    target = math.ceil(projected / shards)
    configs = {
        "one job": "[fanout]\nmin_projected_seconds = 0\n",
        "fan-out": "[fanout]\nmin_projected_seconds = 1\nbytes_per_second = 1000000\n"
        f"target_shard_seconds = {target}\n",
    }
    print(
        "\nthrough the local executor (`alignbatch-controller run --local ROOT --once`), "
        f"the middle of {repeat} runs by CPU:"
    )
    print(f"{'':<9} {'wall s':>7} {'tree CPU s':>11} {'jobs CPU s':>11}  per job (cpu_seconds)")
    results: dict[str, tuple[float, float, float]] = {}
    for name, text in configs.items():
        samples = []
        for _ in range(repeat):
            root = Path(tempfile.mkdtemp(prefix="fanout-local-"))
            inbox = root / "inbox" / "big"
            inbox.mkdir(parents=True)
            for src in (bam, Path(f"{bam}.bai")):
                dest = inbox / src.name
                try:
                    os.link(src, dest)
                except OSError:
                    shutil.copy(src, dest)
                past = time.time() - 60
                os.utime(dest, (past, past))
            cfg = root / "alignbatch.toml"
            cfg.write_text(text)
            cmd = [str(controller), "run", "--local", str(root), "--config", str(cfg), "--once"]
            wall, tree = run([*cmd, "--metrics-port", "0", "--max-seconds", "600"], root, dict(os.environ))
            jobs = {}
            for log in sorted((root / "logs").glob("*.log")):
                for line in log.read_text().splitlines():
                    if '"worker_summary"' in line:
                        jobs[log.stem.split("-", 2)[-1]] = json.loads(line)["cpu_seconds"]
            samples.append((wall, tree, sum(jobs.values()), jobs))
            shutil.rmtree(root)
        samples.sort(key=lambda x: x[1])
        wall, tree, job_cpu, jobs = samples[len(samples) // 2]
        results[name] = (wall, tree, job_cpu)
        each = ", ".join(f"{k} {v:.2f}" for k, v in jobs.items())
        print(f"{name:<9} {wall:7.2f} {tree:11.2f} {job_cpu:11.2f}  {each}")
    (_, tree1, jobs1), (_, tree2, jobs2) = results["one job"], results["fan-out"]
    print(
        f"fan-out / one job: jobs' CPU {jobs2 / jobs1:.2f}x, the whole tree (controller included) "
        f"{tree2 / tree1:.2f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
