"""Fixtures shared by the integration tests of this folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def scratch(tmp_path: Path) -> Path:
    """A per-test scratch root for the worker (its ALIGNBATCH_SCRATCH)."""
    path = tmp_path / "scratch"
    path.mkdir()
    return path
