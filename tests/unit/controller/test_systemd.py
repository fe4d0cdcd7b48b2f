"""sd_notify datagrams."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from controller.systemd import notify


def test_sd_notify_sends_datagrams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert notify("READY=1")
        assert notify("STATUS=runs active=1")
        assert server.recv(100) == b"READY=1"
        assert server.recv(100) == b"STATUS=runs active=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert notify("READY=1") is False
