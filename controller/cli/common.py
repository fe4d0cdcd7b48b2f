"""What every subcommand shares: exit codes, the one-line failure, choosing the config from the
command line (--config FILE, --local DIR, --ledger PATH), logging set-up."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from controller.config import ConfigError, ControllerConfig, load_config, local_config

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TRANSIENT, EXIT_CONFIG = 0, 1, 2, 75, 78


def _fail(message: str, code: int) -> int:
    print(f"alignbatch-controller: {message}", file=sys.stderr)
    return code


def _config_from(args: argparse.Namespace) -> ControllerConfig:
    # Every subcommand's namespace has config, local and ledger (build_parser sets the defaults).
    base = load_config(args.config) if args.config else None
    if args.local:
        return local_config(args.local, base)
    if base is None:
        if args.ledger:
            return replace(
                ControllerConfig(), state=replace(ControllerConfig().state, ledger_path=args.ledger)
            )
        raise ConfigError("give --config FILE (AWS) or --local DIR")
    if args.ledger:
        base = replace(base, state=replace(base.state, ledger_path=args.ledger))
    return base


def _configure_logging(level: str, log_format: str = "json") -> None:
    from core.logs import configure_logging, wants_json

    json_lines = wants_json(log_format, sys.stdout)
    configure_logging(stream=sys.stdout, level=level, json=json_lines, service="alignbatch-controller")
