"""`alignbatch-controller`: run the daemon, check a config, and operate on the ledger.

    run --config FILE | --local DIR [--once] [--demo] [--metrics-port N] [--log-format auto|json|console]
    check --config FILE                  validate the config and verify every AWS resource it names
    status   [--config FILE | --local DIR | --ledger PATH]
    runs     [...] [--state S] [--sample NAME] [--prefix KEY] [--limit N] [--json]
    retry    RUN_ID... | --all-failed    steps that did not succeed run again; succeeded ones are reused
    cancel   RUN_ID...                   terminate the run's jobs and mark it cancelled
    submit   s3://bucket/prefix/ | DIR   backfill existing objects through the same path as new events

Exit codes: 0 ok; 1 a check or an operation failed; 2 command-line usage; 75 a transient AWS/IO error
(retry later); 78 the configuration is invalid.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from controller.config import ConfigError, ControllerConfig, load_config, local_config, validate_aws
from core.logs import LOG_LEVELS

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TRANSIENT, EXIT_CONFIG = 0, 1, 2, 75, 78


def _fail(message: str, code: int) -> int:
    print(f"alignbatch-controller: {message}", file=sys.stderr)
    return code


def _config_from(args: argparse.Namespace) -> ControllerConfig:
    base = load_config(args.config) if getattr(args, "config", None) else None
    if getattr(args, "local", None):
        return local_config(args.local, base)
    if base is None:
        ledger = getattr(args, "ledger", None)
        if ledger:
            return replace(ControllerConfig(), state=replace(ControllerConfig().state, ledger_path=ledger))
        raise ConfigError("give --config FILE (AWS) or --local DIR")
    if getattr(args, "ledger", None):
        base = replace(base, state=replace(base.state, ledger_path=args.ledger))
    return base


def _configure_logging(level: str, log_format: str = "json") -> None:
    from core.logs import configure_logging, wants_json

    json_lines = wants_json(log_format, sys.stdout)
    configure_logging(stream=sys.stdout, level=level, json=json_lines, service="alignbatch-controller")


# -- run -------------------------------------------------------------------------------------------
def seed_demo(inbox: Path) -> list[str]:
    """Copy the shipped sample BAMs into the inbox (one has no index, so the index step shows)."""
    inbox.mkdir(parents=True, exist_ok=True)
    copied = []
    demo = resources.files("controller") / "demo"
    for item in sorted(demo.iterdir(), key=lambda p: p.name):
        if not item.name.endswith((".bam", ".bai")):
            continue
        target = inbox / "demo" / item.name
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with resources.as_file(item) as src:
            shutil.copyfile(src, target)
        copied.append(str(target))
    # Make the copies look settled at once, so `--once` does not wait for them.
    past = time.time() - 5
    for path in copied:
        os.utime(path, (past, past))
    return copied


def cmd_run(args: argparse.Namespace) -> int:
    from controller.daemon import Daemon, build_controller, human_summary, start_metrics
    from controller.factory import mode_for

    cfg = _config_from(args)
    mode = mode_for(cfg)
    problems = mode.problems(cfg)
    if problems:
        raise ConfigError(f"{args.config}: " + "; ".join(problems))
    if args.demo and mode.demo_inbox is None:
        return _fail("--demo needs --local DIR", EXIT_USAGE)
    level = args.log_level or cfg.logging.level
    shipper = None
    if cfg.logging.cloudwatch_group and mode.ships_logs:
        from controller.cloudwatch import install_cloudwatch_shipping

        # CloudWatch gets JSON lines whatever --log-format says (Logs Insights parses them).
        shipper = install_cloudwatch_shipping(cfg, level=level)
    else:
        _configure_logging(level, args.log_format)
    from controller.config import warnings
    from core.logs import get_logger

    for warning in warnings(cfg):
        get_logger(component="config").warning("config.warning", detail=warning)
    if args.demo and mode.demo_inbox is not None:
        seed_demo(mode.demo_inbox)
    ctl = build_controller(cfg, once=args.once, slots=args.slots)
    daemon = Daemon(ctl)
    daemon.install_signals()
    # `--once` is for scripts and the demo: no endpoint (and no port clash) unless asked for.
    default_port = 0 if args.once else cfg.metrics.port
    port = default_port if args.metrics_port is None else args.metrics_port
    if not 0 <= port <= 65535:
        raise ConfigError(f"metrics port {port}: must be 0-65535 (0 = no endpoint)")
    server = start_metrics(ctl, daemon, cfg.metrics.address, port)
    try:
        if args.once:
            code = daemon.run_once(max_seconds=args.max_seconds)
            sys.stdout.flush()
            print(human_summary(ctl), end="", flush=True)
            runs = ctl.ledger.run_counts()
            if args.fail_on_error and (runs["failed"] or runs["rejected"]):
                code = EXIT_FAILED
        else:
            code = daemon.run_forever()
    finally:
        if server is not None:
            server.stop()
        if shipper is not None:
            shipper.stop()  # sends what is still queued
    return code


# -- check -----------------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    from controller.checks import check_resources

    cfg = load_config(args.config)
    problems = validate_aws(cfg)
    for p in problems:
        print(f"INVALID  {p}")
    if problems:
        return EXIT_CONFIG
    results = check_resources(cfg)
    for ok, what, detail in results:
        print(f"{'ok     ' if ok else 'MISSING'}  {what}{': ' + detail if detail else ''}")
    return EXIT_OK if all(ok for ok, _, _ in results) else EXIT_FAILED


# -- ledger views ----------------------------------------------------------------------------------
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
    from controller.daemon import build_controller

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


# -- argument parsing ------------------------------------------------------------------------------
def _where(p: argparse.ArgumentParser, *, local: bool = True) -> None:
    p.add_argument("--config", metavar="FILE", help="controller TOML (AWS mode)")
    if local:
        p.add_argument(
            "--local", metavar="DIR", help="local mode directory (DIR/inbox, DIR/results, DIR/state.db)"
        )
    p.add_argument("--ledger", metavar="PATH", help="ledger file (overrides [state] ledger_path)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alignbatch-controller", description="alignbatch controller daemon and operator commands"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the controller (AWS with --config, or --local DIR)")
    _where(run)
    run.add_argument("--once", action="store_true", help="drain the inbox, finish every job, exit")
    run.add_argument("--demo", action="store_true", help="seed DIR/inbox with the shipped sample BAMs")
    run.add_argument(
        "--metrics-port", type=int, default=None, help="metrics port (0 = off; default from config)"
    )
    run.add_argument(
        "--slots", type=int, default=None, help="local mode: concurrent jobs (default: CPU count)"
    )
    run.add_argument("--max-seconds", type=float, default=None, help="--once: give up after this long")
    run.add_argument("--fail-on-error", action="store_true", help="--once: exit 1 when any run failed")
    run.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, default=None, help="default: [logging] level"
    )
    run.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="log lines on stdout: json (one object a line), console (readable), or auto (default): "
        "console when stdout is a terminal, json otherwise (journald, pipes, files)",
    )
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="validate a config and verify the AWS resources it names")
    check.add_argument("--config", metavar="FILE", required=True)
    check.set_defaults(func=cmd_check)

    status = sub.add_parser("status", help="counts by state and recent failures")
    _where(status)
    status.add_argument("--failures", type=int, default=10)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    runs = sub.add_parser("runs", help="list runs")
    _where(runs)
    runs.add_argument(
        "--state",
        action="append",
        choices=("active", "succeeded", "failed", "cancelled", "rejected"),
        help="only runs in this state (repeatable)",
    )
    runs.add_argument("--sample")
    runs.add_argument("--prefix", help="only keys starting with this")
    runs.add_argument("--limit", type=int, default=100)
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)

    retry = sub.add_parser("retry", help="run failed steps of a run again (succeeded steps are reused)")
    _where(retry)
    retry.add_argument("run_ids", nargs="*", metavar="RUN_ID")
    retry.add_argument("--all-failed", action="store_true")
    retry.set_defaults(func=cmd_retry)

    cancel = sub.add_parser("cancel", help="terminate a run's jobs and mark it cancelled")
    _where(cancel)
    cancel.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    cancel.set_defaults(func=cmd_cancel)

    submit = sub.add_parser("submit", help="backfill: record existing objects under a prefix as new events")
    _where(submit)
    submit.add_argument("prefix", metavar="s3://BUCKET/PREFIX/")
    submit.add_argument("--no-progress", action="store_true")
    submit.set_defaults(func=cmd_submit)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # boto/IO trouble reaching AWS: one line, transient
        from botocore.exceptions import BotoCoreError, ClientError

        from core.awserrors import aws_config_error
        from core.errors import WorkerError

        # A bad AWS config file or profile is configuration, not a transient error: do not retry it.
        if (config_error := aws_config_error(exc)) is not None:
            return _fail(str(config_error), EXIT_CONFIG)
        if isinstance(exc, BotoCoreError | ClientError | WorkerError | OSError):
            return _fail(f"{type(exc).__name__}: {exc}", EXIT_TRANSIENT)
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
