"""Where a program is: on PATH, else beside this interpreter (the virtualenv's console scripts)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def find_program(name: str) -> str | None:
    """`name` on PATH, else beside this interpreter.

    `make demo` and systemd run `.venv/bin/alignbatch-controller` without activating the virtualenv, so
    its console scripts (alignbatch-worker, -index, -summary, -alignstats) are not on PATH for the jobs.
    """
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None
