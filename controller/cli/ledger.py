"""Operator commands on the ledger: `status`, `runs`, `retry`, `cancel`, and `submit` (backfill)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _config_from, _configure_logging, _fail
from controller.config import ConfigError


def _ledger(args: argparse.Namespace) -> Any:
    from controller.ledger import Ledger

    cfg = _config_from(args)
    path = Path(cfg.state.ledger_path)
    if not path.exists():
        raise ConfigError(f"no ledger at {path}: has the controller run with this config?")
    return Ledger(path), cfg


def _ts(value: float | None) -> str:
    return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def cmd_status(args: argparse.Namespace) -> int:
    ledger, _ = _ledger(args)
    runs, jobs = ledger.run_counts(), ledger.job_counts()
    if args.json:
        failures = [
            {"run_id": r.run_id, "key": r.key, "reason": r.reason, "log_stream": j.log_stream if j else None}
            for r, j in ledger.recent_failures(args.failures)
        ]
        print(json.dumps({"runs": runs, "jobs": jobs, "recent_failures": failures}, indent=2))
        return EXIT_OK
    print("runs: " + "  ".join(f"{k}={v}" for k, v in runs.items()))
    print("jobs: " + "  ".join(f"{k}={v}" for k, v in jobs.items() if v) or "jobs: none")
    failures = ledger.recent_failures(args.failures)
    if failures:
        print("recent failures:")
        for run, job in failures:
            log = f"\n    log: {job.log_stream}" if job and job.log_stream else ""
            print(f"  {run.run_id}  {run.key}\n    {run.reason}{log}")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    ledger, _ = _ledger(args)
    rows = ledger.runs(
        states=args.state or None, sample=args.sample, key_prefix=args.prefix, limit=args.limit
    )
    if args.json:
        out = []
        for r in rows:
            d = asdict(r)
            d["jobs"] = [
                {k: v for k, v in asdict(j).items() if k != "spec"} for j in ledger.jobs_for_run(r.run_id)
            ]
            out.append(d)
        print(json.dumps(out, indent=2))
        return EXIT_OK
    print(f"{'RUN':18} {'STATE':10} {'CREATED':19} {'SAMPLE':24} KEY")
    for r in rows:
        print(f"{r.run_id:18} {r.state:10} {_ts(r.created_at):19} {r.sample[:24]:24} {r.key}")
        if r.reason:
            print(f"{'':18} {r.reason}")
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    from controller.states import RunState

    ledger, _ = _ledger(args)
    ids = list(args.run_ids)
    if args.all_failed:
        ids += [r.run_id for r in ledger.runs(states=[RunState.FAILED])]
    if not ids:
        return _fail("give RUN_ID... or --all-failed", EXIT_USAGE)
    failed = 0
    for run_id in ids:
        steps = ledger.retry_run(run_id)
        if steps:
            print(f"{run_id}: will run again: {', '.join(steps)} (the running controller submits them)")
        else:
            run = ledger.get_run(run_id)
            why = (
                "no such run"
                if run is None
                else f"run is {run.state}, only failed/cancelled runs can be retried"
            )
            print(f"{run_id}: not retried: {why}", file=sys.stderr)
            failed += 1
    return EXIT_FAILED if failed else EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    from controller.factory import build_controller

    cfg = _config_from(args)
    _configure_logging("WARNING")
    ctl = build_controller(cfg, with_source=False)
    failed = 0
    for run_id in args.run_ids:
        if ctl.cancel_run(run_id):
            print(f"{run_id}: cancelled")
        else:
            print(f"{run_id}: not cancelled (unknown or already finished)", file=sys.stderr)
            failed += 1
    return EXIT_FAILED if failed else EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    from controller.backfill import backfill

    cfg = _config_from(args)
    _configure_logging("WARNING")
    return backfill(cfg, args.prefix, progress=not args.no_progress)
