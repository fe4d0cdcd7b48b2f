"""The deploy checks' helpers: find the real tools (venv, .tools/bin, PATH) and load templates."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CFN_DIR = DEPLOY / "cloudformation"
TEMPLATES = sorted(CFN_DIR.glob("*.yaml"))


def find_tool(name: str) -> str | None:
    """The project's own copy first (venv, then .tools/bin from scripts/install-tools.sh), then PATH."""
    for directory in (Path(sys.executable).parent, ROOT / ".venv" / "bin", ROOT / ".tools" / "bin"):
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def require_tool(name: str, how: str) -> str:
    path = find_tool(name)
    if path is None:
        pytest.skip(f"{name} is not installed ({how})")
    return path


def load_template(path: Path) -> dict[str, Any]:
    from cfnlint.decode import cfn_yaml

    return cfn_yaml.load(str(path))
