"""Shared fixtures: a real moto server over HTTP, fake credentials, test data locations.

Every AWS call in the tests goes over HTTP to a moto server started here; nothing patches boto3.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.moto import DATA, FAKE_ENV, SHARED_REFDATA, free_port, reset_moto

# Every call into the ahead-of-time kernels is checked against their compiled signature (pycc itself
# checks only item sizes: worker/engine/aot.py); set before anything imports the engine, and inherited
# by the engine processes the tests start.
os.environ.setdefault("ALIGNBATCH_ENGINE_AOT_CHECK", "1")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """Start one moto server for the session on a free loopback port; yield its URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture()
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A clean moto state and an environment where boto3 (and child processes) talk only to it."""
    reset_moto(moto_endpoint)
    for key, value in FAKE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    yield moto_endpoint


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Small cases copied from ../shared/refdata into the repo (always present)."""
    return DATA


@pytest.fixture(scope="session")
def refdata() -> Path:
    """The full shared reference data set; tests needing it skip cleanly when it is absent."""
    if not (SHARED_REFDATA / "a_wgs.bam").exists():
        pytest.skip("../shared/refdata is not present (large shared cases)")
    return SHARED_REFDATA


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long variants (marked slow) run only with ALIGNBATCH_SLOW=1 or an explicit `-m slow`."""
    if os.environ.get("ALIGNBATCH_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="long variant: run with ALIGNBATCH_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
