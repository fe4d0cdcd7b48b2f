"""Drain time of the whole AWS path on the e2e harness: N objects dropped at once, no faults.

    python benchmarks/e2e.py --objects 50 [--concurrency 4] [--with-index-every 2]

Stands up the same path as tests/e2e (moto server whose Batch runs jobs as local processes, deploy
stacks, rendered config, `alignbatch-controller run --config`), drops N copies of tests/data/i_edge.bam,
and prints: time from first put to the last run settled, objects/minute, job wall time by step (median and
max, from the processes the harness started), and the controller's job submission count.
Figures depend on the host's cores: every job is a real Python process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.harness import MotoBatch, metric_sum  # noqa: E402
from tests.support.pipeline import Pipeline  # noqa: E402
from tests.support.workload import drop_bams  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4, help="job processes at once")
    parser.add_argument(
        "--with-index-every",
        type=int,
        default=2,
        help="every Nth object gets its .bai first (0 = all need an index job)",
    )
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="alignbatch-e2e-bench-") as tmp:
        work = Path(tmp)
        mb = MotoBatch(workdir=work / "moto", max_concurrent=args.concurrency).start()
        try:
            pipe = Pipeline.create(mb, work / "pipeline")
            pipe.controller.start().wait_ready()
            began = time.monotonic()
            keys = drop_bams(
                pipe,
                ROOT / "tests" / "data",
                args.objects,
                prefix="bench",
                with_index_every=args.with_index_every,
            )
            put_seconds = time.monotonic() - began
            drain = pipe.wait_settled(keys, timeout=args.timeout) + put_seconds
            metrics = pipe.controller.metrics()
            runs = mb.runs()
            pipe.controller.stop()
        finally:
            mb.stop()

    print(
        f"objects={args.objects} concurrency={args.concurrency} put={put_seconds:.1f}s "
        f"drain={drain:.1f}s objects_per_min={args.objects / drain * 60:.1f}"
    )
    for step in ("index", "alignstats", "summary"):
        walls = [r["ended"] - r["started"] for r in runs if f"-{step}-a" in r["job_name"] and r["ended"]]
        if walls:
            print(
                f"  {step:<10} jobs={len(walls):<4} median={statistics.median(walls):.2f}s "
                f"max={max(walls):.2f}s"
            )
    print(
        f"  submissions={metric_sum(metrics, 'alignbatch_job_submissions_total'):.0f} "
        f"runs_succeeded={metric_sum(metrics, 'alignbatch_runs_total', outcome='succeeded'):.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
