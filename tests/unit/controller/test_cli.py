"""The command line's parser: log format selection."""

from __future__ import annotations

import io

import pytest


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_format_auto_is_console_on_a_terminal_and_json_elsewhere() -> None:
    from controller.cli import build_parser
    from core.logs import wants_json

    assert wants_json("auto", io.StringIO()) is True  # journald, pipes, files
    assert wants_json("auto", _Tty()) is False
    assert wants_json("json", _Tty()) is True
    assert wants_json("console", io.StringIO()) is False
    assert build_parser().parse_args(["run", "--local", "d"]).log_format == "auto"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--local", "d", "--log-format", "xml"])
