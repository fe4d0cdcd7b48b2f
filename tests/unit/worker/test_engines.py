"""Which program runs for a tool name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from core.errors import UsageError
from worker.engines import resolve_engine


def test_configured_binary_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "alignstats"
    fake.write_text("#!/bin/sh\necho 'AlignStats v0.11 (using HTSlib 1.16)' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("ALIGNBATCH_ALIGNSTATS_BIN", str(fake))
    engine = resolve_engine("alignstats")
    assert engine.name == "alignstats" and engine.argv == (str(fake),) and engine.version == "0.11"


def test_builtin_when_no_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ALIGNBATCH_ALIGNSTATS_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no alignstats, no console scripts
    engine = resolve_engine("alignstats")
    assert engine.name == "alignbatch-alignstats"
    # The console script beside the interpreter (an un-activated venv), else the module itself.
    beside = Path(sys.executable).parent / "alignbatch-alignstats"
    assert engine.argv in ((str(beside),), (sys.executable, "-m", "worker.engine.cli"))
    assert engine.version and "alignstats 0.11" in engine.version


def test_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ALIGNBATCH_ALIGNSTATS_BIN", str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="ALIGNBATCH_ALIGNSTATS_BIN"):
        resolve_engine("alignstats")
    with pytest.raises(UsageError, match="not found on PATH"):
        resolve_engine("no-such-tool-xyz")
