"""What `run --local DIR` shows a person at a terminal: a live progress display while it works, the
structured log going to DIR/logs/controller.jsonl instead of the screen, and one closing table of the
samples with their QC verdicts and the batch report's path.

Chosen once in cli/run.py: only when stdout is a terminal, the mode is local and neither `--verbose` nor
an explicit `--log-format` asked for the log lines (without a terminal the output is the JSON lines and
the summary it always was; scripts and tests rely on that).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from controller.qc.publish import report_uri
from controller.results_table import table_locations
from controller.service import Controller
from controller.states import BATCH_ACTIVE

LOG_NAME = "controller.jsonl"
VERDICT_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}  # nosec B105 # colours, not secrets
# The closing table's columns: header, row keys tried in order (capture assays report Cap*), format.
COLUMNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("mapped %", ("MappedReadsPct",), "{:.2f}"),
    ("duplicate %", ("DuplicateReadsPct",), "{:.2f}"),
    ("mean coverage", ("CapCoverageMean", "WgsCoverageMean"), "{:.1f}"),
    ("median insert", ("InsertSizeMedian",), "{:g}"),
)
MAX_ROWS = 40  # more samples than a screen: the report has them all


def log_path(local_dir: str) -> Path:
    return Path(local_dir) / "logs" / LOG_NAME


def open_log(local_dir: str) -> IO[str]:
    path = log_path(local_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a", encoding="utf-8", buffering=1)


class ProgressView:
    """The live display: files found, running, done, failed; jobs by state. Read from the ledger on
    rich's refresh thread (the ledger serialises access), so the daemon's loops need no callbacks."""

    def __init__(self, ctl: Controller, where: str) -> None:
        self.ctl, self.where = ctl, where

    def render(self) -> Table:
        runs = self.ctl.ledger.run_counts()
        jobs = self.ctl.ledger.job_counts()
        unsettled = self.ctl.source.unsettled if self.ctl.source is not None else 0
        found = sum(runs.values()) + unsettled
        ended = runs["succeeded"] + runs["failed"] + runs["rejected"] + runs["cancelled"]
        failed = runs["failed"] + runs["rejected"]
        line = Text.assemble(
            ("alignbatch ", "bold"), (self.where, "dim"), "   files found ", (str(found), "bold"),
            "   running ", (str(runs["active"]), "bold cyan"),
            "   done ", (str(runs["succeeded"]), "bold green"),
            "   failed ", (str(failed), "bold red" if failed else "bold"),
        )  # fmt: skip
        in_flight = sum(jobs.get(s, 0) for s in BATCH_ACTIVE)
        states = "  ".join(f"{s.lower()} {n}" for s, n in jobs.items() if n)
        grid = Table.grid()
        grid.add_row(line)
        grid.add_row(ProgressBar(total=max(found, 1), completed=ended, width=50))
        grid.add_row(Text(f"jobs: {states or 'none yet'}  (in flight {in_flight})", style="dim"))
        return grid


def _number(row: Mapping[str, Any], keys: Sequence[str], fmt: str) -> str:
    for key in keys:
        value = row.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return fmt.format(value)
    return "-"


def results_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(
        title="QC by sample (failed rules, trends: the report)", title_justify="left", header_style="bold"
    )
    table.add_column("sample")
    table.add_column("verdict")
    for header, _, _ in COLUMNS:
        table.add_column(header, justify="right")
    for row in sorted(rows, key=lambda r: str(r.get("sample", "")))[:MAX_ROWS]:
        verdict = str(row.get("qc_verdict") or "-")
        table.add_row(
            str(row.get("sample", "")),
            Text(verdict, style=VERDICT_STYLE.get(verdict, "")),
            *(_number(row, keys, fmt) for _, keys, fmt in COLUMNS),
        )
    if len(rows) > MAX_ROWS:
        table.caption = f"{len(rows) - MAX_ROWS} more samples in the report"
    return table


def closing(console: Console, ctl: Controller, local_dir: str) -> None:
    """The one screen a person reads at the end: the table, counts, where everything is."""
    rows = ctl.ledger.result_rows()
    runs = ctl.ledger.run_counts()
    if rows:
        console.print(results_table(rows))
    console.print(
        f"runs: {runs['succeeded']} succeeded, {runs['failed']} failed, {runs['rejected']} rejected, "
        f"{runs['active']} still active",
        highlight=False,
    )
    for run, job in ctl.ledger.recent_failures(limit=5):
        where = f" (log: {job.log_stream})" if job and job.log_stream else ""
        console.print(f"  [red]{run.key}[/red]: {run.reason}{where}", highlight=False)
    report = Path(report_uri(ctl.cfg.results_root))
    csv_uri, _ = table_locations(ctl.cfg.results_root)
    if report.exists():
        console.print(f"report: {report}", highlight=False, soft_wrap=True)
    else:
        console.print("report: not written (pip install 'alignbatch[report]'; see the log)", highlight=False)
    console.print(f"table:  {csv_uri}", highlight=False, soft_wrap=True)
    console.print(f"log:    {log_path(local_dir)}", highlight=False, soft_wrap=True)


def live(ctl: Controller, console: Console, where: str) -> Live:
    view = ProgressView(ctl, where)
    return Live(get_renderable=view.render, console=console, refresh_per_second=4, transient=False)
