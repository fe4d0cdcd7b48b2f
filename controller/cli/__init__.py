"""`alignbatch-controller`: run the daemon, check a config, and operate on the ledger.

    run --config FILE | --local DIR [--once] [--demo] [--metrics-port N] [--log-format auto|json|console]
        [--verbose]                      on a terminal, --local shows progress and a closing QC table
                                         (log: DIR/logs/controller.jsonl); --verbose shows the log lines
    check [--config FILE] [--thresholds FILE]   validate the thresholds file, the config, and every AWS
                                         resource it names
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
import sys

from controller.cli.common import EXIT_CONFIG, EXIT_TRANSIENT, _fail
from controller.cli.ledger import cmd_cancel, cmd_retry, cmd_runs, cmd_status, cmd_submit
from controller.cli.run import cmd_check, cmd_run
from controller.config import ConfigError
from core.logs import LOG_LEVELS


def _where(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="controller TOML (AWS mode)")
    p.add_argument(
        "--local", metavar="DIR", help="local mode directory (DIR/inbox, DIR/results, DIR/state.db)"
    )
    p.add_argument("--ledger", metavar="PATH", help="ledger file (overrides [state] ledger_path)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alignbatch-controller", description="alignbatch controller daemon and operator commands"
    )
    # Every namespace carries the three ways to name a controller, so no command has to probe for them.
    parser.set_defaults(config=None, local=None, ledger=None)
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
    run.add_argument(
        "--verbose",
        action="store_true",
        help="--local on a terminal: show the log lines instead of the progress display "
        "(which writes them to DIR/logs/controller.jsonl)",
    )
    run.set_defaults(func=cmd_run)

    check = sub.add_parser(
        "check", help="validate the thresholds file and a config, and verify the AWS resources it names"
    )
    check.add_argument("--config", metavar="FILE")
    check.add_argument(
        "--thresholds", metavar="FILE", help="QC thresholds file (default: [qc] thresholds, else the shipped)"
    )
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
