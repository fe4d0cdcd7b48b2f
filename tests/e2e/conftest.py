"""Fixtures for the end-to-end suite: one Batch-running moto server per session, reset per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import MotoBatch
from tests.e2e.pipeline import Pipeline


@pytest.fixture(scope="session")
def motobatch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoBatch]:
    server = MotoBatch(workdir=tmp_path_factory.mktemp("motobatch")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def mb(motobatch: MotoBatch) -> Iterator[MotoBatch]:
    """The session's server with clean state, no faults and default job capacity."""
    motobatch.reset()
    motobatch.configure_jobs(max_concurrent=4, env_rules=[])
    yield motobatch
    motobatch.clear_faults()


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture()
def pipeline(mb: MotoBatch, tmp_path: Path) -> Iterator[Pipeline]:
    """Stacks deployed, notification applied, config rendered; the controller is NOT started yet."""
    pipe = Pipeline.create(mb, tmp_path)
    try:
        yield pipe
    finally:
        pipe.controller.stop()
