"""`run` (the daemon, or `--once`, optionally seeded with the demo BAMs) and `check` (a config and the
AWS resources it names)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from controller.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    _config_from,
    _configure_logging,
    _fail,
)
from controller.config import ConfigError, ControllerConfig, load_config, load_qc_thresholds, validate_aws


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
    # The verdict rules are checked before anything starts: a typo is exit 78 with FILE:LINE, not a
    # daemon that fails every finished run.
    thresholds = load_qc_thresholds(cfg)
    level = args.log_level or cfg.logging.level
    shipper = None
    # A person at a terminal running --local gets the progress display; the log goes to a file.
    quiet = (
        cfg.local_dir is not None and not args.verbose and args.log_format == "auto" and sys.stdout.isatty()
    )
    log_file = None
    if quiet:
        from controller.cli.terminal import open_log
        from core.logs import configure_logging

        log_file = open_log(cfg.local_dir or ".")
        configure_logging(stream=log_file, level=level, json=True, service="alignbatch-controller")
    elif cfg.logging.cloudwatch_group and mode.ships_logs:
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
    ctl = build_controller(cfg, once=args.once, slots=args.slots, thresholds=thresholds)
    daemon = Daemon(ctl)
    daemon.install_signals()
    # `--once` is for scripts and the demo: no endpoint (and no port clash) unless asked for.
    default_port = 0 if args.once else cfg.metrics.port
    port = default_port if args.metrics_port is None else args.metrics_port
    if not 0 <= port <= 65535:
        raise ConfigError(f"metrics port {port}: must be 0-65535 (0 = no endpoint)")
    server = start_metrics(ctl, daemon, cfg.metrics.address, port)
    try:
        if quiet:
            code = _run_on_terminal(ctl, daemon, args)
        elif args.once:
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
        if log_file is not None:
            log_file.close()
    return code


def _run_on_terminal(ctl: Any, daemon: Any, args: argparse.Namespace) -> int:
    """`run --local` for a person: the live display while the daemon works, then the closing table."""
    from rich.console import Console

    from controller.cli import terminal

    console = Console()
    local_dir = ctl.cfg.local_dir or "."
    console.print(
        f"alignbatch: inbox {ctl.cfg.inbox_root}; log lines go to {terminal.log_path(local_dir)}",
        highlight=False,
    )
    with terminal.live(ctl, console, args.local):
        code = daemon.run_once(max_seconds=args.max_seconds) if args.once else daemon.run_forever()
    terminal.closing(console, ctl, local_dir)
    runs = ctl.ledger.run_counts()
    if args.once and args.fail_on_error and (runs["failed"] or runs["rejected"]):
        code = EXIT_FAILED
    return code


# -- check -----------------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    """The thresholds file first (a bad one raises ConfigError `FILE:LINE: reason`, exit 78), then, with
    --config, the config and every AWS resource it names."""
    from controller.checks import check_resources

    if args.config is None and args.thresholds is None:
        return _fail("check needs --config FILE and/or --thresholds FILE", EXIT_USAGE)
    cfg = load_config(args.config) if args.config else ControllerConfig()
    path = args.thresholds or cfg.thresholds_path
    rules = load_qc_thresholds(cfg, path)
    count = sum(len(a.rules) for a in rules.assays)
    print(
        f"ok       thresholds {path}: version {rules.version}, "
        f"{len(rules.assays)} assays ({', '.join(a.name for a in rules.assays)}), {count} rules"
    )
    if args.config is None:
        return EXIT_OK
    problems = validate_aws(cfg)
    for p in problems:
        print(f"INVALID  {p}")
    if problems:
        return EXIT_CONFIG
    results = check_resources(cfg)
    for ok, what, detail in results:
        print(f"{'ok     ' if ok else 'MISSING'}  {what}{': ' + detail if detail else ''}")
    return EXIT_OK if all(ok for ok, _, _ in results) else EXIT_FAILED
