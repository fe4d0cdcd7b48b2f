"""systemd/alignbatch-controller.service: `systemd-analyze verify` with any output treated as failure, and
the directives the issue requires."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.deploy import ROOT, find_tool, require_tool

UNIT = ROOT / "systemd" / "alignbatch-controller.service"
ENV_EXAMPLE = ROOT / "systemd" / "alignbatch-controller.env.example"
EXEC_START = "/usr/local/bin/alignbatch-controller run --config /etc/alignbatch/controller.toml"


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_unit_verifies_without_any_output(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze", "Debian package systemd")
    controller = find_tool("alignbatch-controller")
    assert controller, "alignbatch-controller console script missing (pip install -e .)"
    # verify exits 1 when ExecStart's binary does not exist on this machine: check a copy whose ExecStart
    # points at the installed console script, everything else byte-identical.
    text = UNIT.read_text()
    assert text.count("ExecStart=/usr/local/bin/alignbatch-controller ") == 1
    copy = tmp_path / UNIT.name
    copy.write_text(
        text.replace("ExecStart=/usr/local/bin/alignbatch-controller ", f"ExecStart={controller} ")
    )
    proc = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stdout + proc.stderr


def test_unit_has_the_required_service_settings() -> None:
    d = directives(UNIT.read_text())
    assert d["Type"] == ["notify"]
    assert int(d["WatchdogSec"][0]) > 0
    assert d["Restart"] == ["on-failure"]
    assert d["ExecStart"] == [EXEC_START]
    assert d["DynamicUser"] == ["yes"] and d["User"] == ["alignbatch"]
    assert d["StateDirectory"] == ["alignbatch"]
    assert d["EnvironmentFile"] == ["-/etc/alignbatch/controller.env"]
    hardening = {
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "ProtectHome": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "SystemCallArchitectures": "native",
    }
    for key, value in hardening.items():
        assert d[key] == [value], key


def test_environment_file_example_has_no_secrets() -> None:
    d = directives(ENV_EXAMPLE.read_text())
    assert d["AWS_RETRY_MODE"] == ["adaptive"]
    assert not any("SECRET" in key or "ACCESS_KEY" in key for key in d)
