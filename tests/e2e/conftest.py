"""Fixtures for the end-to-end suite: one Batch-running moto server per session, reset per test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import MotoBatch
from tests.support.pipeline import Figures, Pipeline


@pytest.fixture(scope="session")
def motobatch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoBatch]:
    server = MotoBatch(workdir=tmp_path_factory.mktemp("motobatch")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def mb(motobatch: MotoBatch, request: pytest.FixtureRequest) -> Iterator[MotoBatch]:
    """The session's server with clean state, no faults and default job capacity."""
    motobatch.reset()
    motobatch.configure_jobs(max_concurrent=4, env_rules=[])
    yield motobatch
    fig: Figures | None = getattr(request.node, "_e2e_figures", None)
    if fig is not None:
        # Faults by kind and Batch-level retries (attempts beyond the first) for every scenario alike.
        fig.faults = motobatch.injected_by_kind()
        fig.job_retries = sum(1 for r in motobatch.runs() if r["attempt"] > 1)
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


# -- figures: what each scenario survived, printed at the end and kept in tests/e2e/last-run.json -----
_FIGURES: list[Figures] = []
LAST_RUN = Path(__file__).with_name("last-run.json")


@pytest.fixture()
def figures(request: pytest.FixtureRequest) -> Figures:
    fig = Figures(scenario=request.node.name)
    _FIGURES.append(fig)
    request.node._e2e_figures = fig
    return fig


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("alignbatch e2e figures")
    for fig in _FIGURES:
        terminalreporter.write_line(fig.summary_line())
    totals = Figures.total(_FIGURES)
    terminalreporter.write_line("TOTAL " + totals.summary_line())


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _FIGURES:
        data = {"scenarios": [f.to_json() for f in _FIGURES], "total": Figures.total(_FIGURES).to_json()}
        LAST_RUN.write_text(json.dumps(data, indent=2) + "\n")
