"""Fixtures for controller unit tests (fakes and helpers are in tests/support/fakes.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import local_config
from controller.factory import build_controller
from controller.metrics import Metrics


@pytest.fixture()
def ctl(tmp_path: Path):
    """A local-profile controller with the real local executor (no jobs are run unless submitted)."""
    (tmp_path / "inbox").mkdir()
    c = build_controller(local_config(tmp_path), metrics=Metrics(), with_source=False, slots=1)
    yield c
    c.executor.close(wait=False)
