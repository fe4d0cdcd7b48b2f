"""The factory: one place that turns a config into a mode (local or AWS) and its parts."""

from __future__ import annotations

from pathlib import Path

from controller.config import ControllerConfig, local_config
from controller.executors.local import LocalExecutor
from controller.factory import build_controller, mode_for
from controller.inbox import LocalInbox
from controller.sources.local_inbox import LocalInboxSource


def test_local_mode_builds_local_parts(tmp_path: Path) -> None:
    cfg = local_config(tmp_path)
    mode = mode_for(cfg)
    assert mode.name == "local" and mode.demo_inbox == tmp_path.resolve() / "inbox" and not mode.ships_logs
    assert mode.problems(cfg) == [] and mode.where == f"--local {tmp_path.resolve()}"
    ctl = build_controller(cfg, once=True, slots=1)
    try:
        assert isinstance(ctl.executor, LocalExecutor) and isinstance(ctl.source, LocalInboxSource)
        assert isinstance(ctl.inbox, LocalInbox) and ctl.inbox.root == cfg.inbox_root
        assert (tmp_path / "results").is_dir()
    finally:
        ctl.executor.close(wait=False)


def test_aws_mode_names_what_is_missing() -> None:
    cfg = ControllerConfig()
    mode = mode_for(cfg)
    assert mode.name == "aws" and mode.demo_inbox is None and mode.ships_logs
    assert "[queue] url is required" in mode.problems(cfg)
