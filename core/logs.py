"""structlog set-up shared by the worker and the controller.

One JSON object per line, so journald, CloudWatch Logs Insights and `jq` can all filter on fields
(`event`, `job_id`, `run_id`, `sample`, `step`, ...). The stream differs by caller: the worker writes to
stderr (a tool may own stdout), the controller to stdout (journald).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def wants_json(log_format: str, stream: TextIO) -> bool:
    """`json` / `console` as asked; `auto`: console for a person at a terminal, JSON for journald/pipes."""
    if log_format == "auto":
        return not (hasattr(stream, "isatty") and stream.isatty())
    return log_format != "console"


def configure_logging(
    *, stream: TextIO | None = None, level: str = "INFO", json: bool = True, **bound: Any
) -> structlog.stdlib.BoundLogger:
    """Configure structlog process-wide and return a logger with `bound` fields on every line."""
    out = stream if stream is not None else sys.stderr
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    return structlog.get_logger().bind(**bound)


def get_logger(**bound: Any) -> Any:
    return structlog.get_logger().bind(**bound)
