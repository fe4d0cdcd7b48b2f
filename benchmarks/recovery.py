"""Ledger backup, restore and rebuild at scale (issue #14). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/recovery.py --runs 10000 [--s3]

Builds an N-run ledger (3 jobs each, specs as the planner writes them) and N summary rows under
rows/, then times: a backup (online backup API + gzip), a restore from it, the rebuild of a ledger from
rows/ alone, and the results table's first and incremental flushes (rows/ listed once per flush, only
new rows read). `--s3` puts the results root in a bucket on an in-process moto server instead of a
local directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.config import ControllerConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--s3", action="store_true", help="results root on a moto S3 server (in-process)")
    args = ap.parse_args()
    from controller.config import local_config
    from controller.config.model import StorageConfig

    work = Path(tempfile.mkdtemp(prefix="alignbatch-recovery-"))
    (work / "inbox").mkdir()
    cfg = local_config(work)
    if args.s3:
        from moto.server import ThreadedMotoServer

        from tests.support.moto import free_port

        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="x",
                          AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1")  # fmt: skip
        import boto3

        for bucket in ("bench-inbox", "bench-results"):
            boto3.client("s3").create_bucket(Bucket=bucket)
        storage = StorageConfig(
            inbox_bucket="bench-inbox", results_bucket="bench-results", results_prefix="alignbatch"
        )
        cfg = replace(cfg, local_dir=None, storage=storage)
    run(args.runs, work, cfg)


def run(n: int, work: Path, cfg: ControllerConfig) -> None:
    from controller.backup import LedgerBackup
    from controller.events import ObjectEvent
    from controller.executors.local import LocalExecutor
    from controller.ledger import Ledger
    from controller.metrics import Metrics
    from controller.recovery import rebuild, restore_backup
    from controller.service import Controller
    from core.locations import parse_location

    results_root = cfg.results_root
    ledger_path = work / "state.db"
    ctl = Controller(cfg, ledger=Ledger(ledger_path), executor=LocalExecutor(work / "logs"), source=None,
                     metrics=Metrics())  # fmt: skip
    store = ctl.store
    t = time.monotonic()
    ctl.handle_event(ObjectEvent(cfg.inbox_root if cfg.is_local else "bench-inbox", "seed.bam", 10, "e",
                                 None, "ObjectCreated:Put", None))  # fmt: skip
    [seed] = ctl.ledger.runs()
    db = ctl.ledger._conn
    db.execute("BEGIN")
    for i in range(1, n):
        rid = f"r{i:016x}"
        db.execute(
            """INSERT INTO runs SELECT ?, bucket, ?, version, etag, version_id, size, sample, input_uri,
               ?, report_uri, row_uri, state, attempt, reason, event_time, created_at, updated_at,
               finished_at FROM runs WHERE run_id = ?""",
            (rid, f"k{i}.bam", f"k{i}.bam", seed.run_id),
        )
        db.execute(
            """INSERT INTO jobs SELECT ?, step, name || ?, ?, 'RUNNING', attempts, exit_code, reason,
               log_stream, spec, intent_at, submitted_at, started_at, stopped_at, updated_at
               FROM jobs WHERE run_id = ?""",
            (rid, str(i), f"job-{i}", seed.run_id),
        )
    db.execute("COMMIT")
    print(f"ledger: {n} runs, {3 * n} jobs, {ledger_path.stat().st_size / 1e6:.1f} MB "
          f"(built in {time.monotonic() - t:.1f} s); results root {results_root}")  # fmt: skip

    backup = LedgerBackup(ledger_path=str(ledger_path), store=store, results_root=results_root,
                          registry=Metrics().registry)  # fmt: skip
    t = time.monotonic()
    size = backup.run()
    print(f"backup:  {time.monotonic() - t:.2f} s, {size / 1e6:.1f} MB gzipped")

    restored = work / "restored.db"
    t = time.monotonic()
    restore_backup(store, results_root, str(restored))
    counted = Ledger(restored).run_counts()["active"]
    print(f"restore: {time.monotonic() - t:.2f} s (download, gunzip, quick_check, open) -> {counted} runs")

    now = datetime.now(UTC).isoformat()
    root = parse_location(results_root, allow_prefix=True)
    inbox = parse_location(cfg.inbox_root, allow_prefix=True)
    t = time.monotonic()
    for i in range(n):
        row = {"run_id": f"r{i:016x}", "sample": f"k{i}", "inbox_key": f"k{i}.bam", "input_etag": "e",
               "input_uri": str(inbox.join(f"k{i}.bam")), "input_size": 10, "written_at": now}  # fmt: skip
        store.write_bytes(root.join(f"rows/r{i:016x}.json"), json.dumps(row).encode())
    print(f"rows/:   {n} rows written in {time.monotonic() - t:.1f} s")

    fresh = Controller(cfg, ledger=Ledger(work / "rebuilt.db"), executor=LocalExecutor(work / "logs2"),
                       source=None, metrics=Metrics())  # fmt: skip
    t = time.monotonic()
    report = rebuild(fresh)
    print(f"rebuild: {time.monotonic() - t:.2f} s from rows/ alone -> {report.finished_runs} succeeded runs")

    t = time.monotonic()
    fresh.finisher.flush_table()
    print(f"table:   first flush {time.monotonic() - t:.2f} s (rows already read by the rebuild: "
          f"{fresh.finisher.rows.reads} reads)")  # fmt: skip
    store.write_bytes(root.join("rows/rnew.json"), json.dumps({"inbox_key": "new.bam"}).encode())
    reads = fresh.finisher.rows.reads
    fresh.finisher._table_dirty.set()
    t = time.monotonic()
    fresh.finisher.flush_table()
    print(f"table:   flush after 1 new row {time.monotonic() - t:.2f} s "
          f"({fresh.finisher.rows.reads - reads} row read, one LIST of {n + 1} rows)")  # fmt: skip


if __name__ == "__main__":
    main()
