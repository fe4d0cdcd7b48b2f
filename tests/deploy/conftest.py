"""Helpers for the deploy checks: find the real tools (venv, .tools/bin, PATH) and load templates."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.deploy import TEMPLATES, load_template


@pytest.fixture(scope="session")
def templates() -> dict[str, dict[str, Any]]:
    """Template file name -> parsed template (intrinsics in their long form: {"Fn::Sub": ...})."""
    return {path.name: load_template(path) for path in TEMPLATES}
