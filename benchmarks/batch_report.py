"""Benchmark the QC batch report and its history: how long one report takes with a big history behind it.

Usage: python benchmarks/batch_report.py [--history 10000] [--period 500] [--repeat 3] [--keep DIR]

Builds synthetic rows from the golden reports (tests/data/golden: WGS e_large__t and capture d_capture__t,
metrics jittered, verdicts from config/thresholds.toml), then times, median of --repeat runs:
- history append: the whole history in one append, then one more pass of --period rows into it (the
  finish stage's cost per pass: the file is rewritten each time);
- history read: the trailing 30 days with the report's columns only (what the report reads);
- model: build_report without plots (statistics, sorting); plots: the matplotlib SVGs; template: Jinja2;
- the whole render, and the page size.
Prints figures only; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controller.qc import batch_report as br  # noqa: E402
from controller.qc import history  # noqa: E402
from core.qc import shipped_thresholds_path  # noqa: E402
from core.qc_file import load_thresholds  # noqa: E402

GOLDEN = ROOT / "tests" / "data" / "golden"
JITTERED = ("MappedReadsPct", "DuplicateReadsPct", "WgsCoverageMean", "CapCoverageMean", "Q30BasesPct")


def make_rows(n: int, end: datetime, span: timedelta, seed: int, prefix: str) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    thresholds = load_thresholds(shipped_thresholds_path())
    reports = {
        "wgs": json.loads((GOLDEN / "e_large__t.json").read_text()),
        "exome": json.loads((GOLDEN / "d_capture__t.json").read_text()),
    }
    rows = []
    for i in range(n):
        assay = "wgs" if i % 4 else "exome"
        report = dict(reports[assay])
        for key in JITTERED:
            report[key] = report[key] * rng.uniform(0.9, 1.1)
            if key.endswith("Pct"):
                report[key] = min(report[key], 100.0)
        key = f"{assay}/{prefix}{i:06d}.bam"
        row = {
            "run_id": f"{prefix}-{i:06d}",
            "sample": f"{prefix}{i:06d}",
            "inbox_key": key,
            "written_at": (end - span * rng.random()).isoformat(),
            **report,
        }
        row.update(thresholds.verdict(report, key).row_columns())
        rows.append(row)
    return rows


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=10_000, help="rows of history (default 10,000)")
    parser.add_argument("--period", type=int, default=500, help="rows in the report's period (default 500)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the history and the page here")
    args = parser.parse_args()

    end = datetime(2026, 12, 1, 12, tzinfo=UTC)
    start = end - timedelta(days=1)
    t0 = time.perf_counter()
    past = make_rows(args.history, start, timedelta(days=365), 1, "H")
    period = make_rows(args.period, end, timedelta(days=1), 2, "P")
    print(f"rows made: {args.history:,} history + {args.period:,} period in {time.perf_counter() - t0:.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        path = where / "history.parquet"

        def append_all() -> int:
            path.unlink(missing_ok=True)
            return history.append_rows(path, past)

        t_all, n = timed(append_all, args.repeat)
        size = path.stat().st_size
        print(f"history append, {n:,} rows at once:      {t_all * 1000:8.1f} ms   file {size / 1e6:.2f} MB")
        t_pass, n = timed(lambda: history.append_rows(path, period), args.repeat)
        print(
            f"history append, {args.period:,} more rows (one pass): {t_pass * 1000:8.1f} ms   now {n:,} runs"
        )

        def read_trailing() -> list[dict[str, Any]]:
            return history.read_history(
                path, since=start - br.TRAILING, until=start, columns=br.HISTORY_COLUMNS
            )

        t_read, trailing = timed(read_trailing, args.repeat)
        print(
            f"history read, trailing 30 days ({len(trailing):,} rows, {len(br.HISTORY_COLUMNS)} columns): "
            f"{t_read * 1000:8.1f} ms"
        )
        kwargs: dict[str, Any] = {"period_start": start, "period_end": end, "now": end}
        t_model, _ = timed(lambda: br.build_report(period, trailing, plots=False, **kwargs), args.repeat)
        t_plots, model = timed(lambda: br.build_report(period, trailing, **kwargs), args.repeat)
        t_tmpl, html = timed(lambda: br.render_html(model), args.repeat)
        print(f"model (no plots):   {t_model * 1000:8.1f} ms")
        print(f"model + {len(model.distributions) + 1} plots:  {t_plots * 1000:8.1f} ms")
        print(f"template:           {t_tmpl * 1000:8.1f} ms")

        def whole() -> str:
            rows = read_trailing()
            return br.render_batch_report(period, rows, **kwargs)

        t_whole, html = timed(whole, args.repeat)
        print(
            f"whole report (read history + render): {t_whole * 1000:8.1f} ms   page {len(html) / 1e6:.2f} MB"
        )
        # The whole history inside the trailing window (a busy month) ...
        t_dense, _ = timed(lambda: br.render_batch_report(period, past, **kwargs), args.repeat)
        print(f"render against {len(past):,} trailing rows:  {t_dense * 1000:8.1f} ms")
        # ... and a period as large as the history (the page grows with the runs table).
        t_big, big = timed(lambda: br.render_batch_report(past, trailing, **kwargs), 1)
        mb = len(big) / 1e6
        print(f"render with {len(past):,} rows in the period: {t_big * 1000:8.1f} ms   page {mb:.2f} MB")
        if args.keep:
            br.write_report(where / "report.html", html)
            print(f"kept: {path} and {where / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
