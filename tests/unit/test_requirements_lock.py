"""deploy/requirements.lock (written by scripts/lock-deps.sh) covers what the controller host installs:
setup.cfg's install_requires and the `report` extra, their extras, and what they pull in, each pinned to a
version the requirement allows and with at least one sha256 (pip's --require-hashes refuses anything else).
"""

from __future__ import annotations

import configparser
import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "deploy" / "requirements.lock"
# The controller host: CPython 3.11 on Linux x86_64 (deploy/cloudformation/controller.yaml).
HOST = {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"}


def _host_requirements() -> list[Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = (
        cfg["options"]["install_requires"].splitlines() + cfg["options.extras_require"]["report"].splitlines()
    )
    return [Requirement(x.strip()) for x in lines if x.strip() and not x.strip().startswith("#")]


def _lock() -> dict[str, tuple[Version, list[str]]]:
    text = LOCK.read_text().replace("\\\n", " ")
    pins: dict[str, tuple[Version, list[str]]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z0-9._-]+)==(\S+)\s+(.*)$", line)
        assert m, f"{LOCK}: {line[:80]!r} is not 'name==version --hash=...'; re-run scripts/lock-deps.sh"
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})\b", m.group(3))
        pins[canonicalize_name(m.group(1))] = (Version(m.group(2)), hashes)
    return pins


def _applies(req: Requirement, extra: str = "") -> bool:
    return req.marker is None or req.marker.evaluate({**HOST, "extra": extra})


def test_every_host_requirement_is_pinned_in_the_lock_with_hashes() -> None:
    pins = _lock()
    for req in _host_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{LOCK}: {req} of setup.cfg is missing; re-run scripts/lock-deps.sh"
        version, hashes = pins[name]
        assert req.specifier.contains(version, prereleases=True), (
            f"{LOCK}: {name}=={version} does not satisfy setup.cfg's {req}; re-run scripts/lock-deps.sh"
        )
    for name, (version, hashes) in pins.items():
        assert hashes, f"{LOCK}: {name}=={version} has no --hash=sha256; re-run scripts/lock-deps.sh"


def test_the_lock_was_made_from_the_current_setup_cfg() -> None:
    made_from = {str(Requirement(x[4:])) for x in LOCK.read_text().splitlines() if x.startswith("#   ")}
    current = {str(r) for r in _host_requirements()}
    assert made_from == current, (
        f"{LOCK}: made from {sorted(made_from)}, setup.cfg: {sorted(current)}; re-run scripts/lock-deps.sh"
    )


def test_requested_extras_and_dependencies_are_in_the_lock() -> None:
    """botocore[crt] needs awscrt; and what each locked package requires (where the installed version is the
    locked one, so its metadata is at hand) is locked too."""
    pins = _lock()
    checked = 0
    wanted = [(r, extra) for r in _host_requirements() for extra in ("", *sorted(r.extras))]
    for req, extra in wanted:
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req.name} is not installed; run: pip install -e '.[test]'")
        for dep in map(Requirement, dist.requires or []):
            if extra and not (dep.marker and _applies(dep, extra) and not _applies(dep)):
                continue  # checking the extra: only what the extra adds
            if _applies(dep, extra):
                assert canonicalize_name(dep.name) in pins, f"{LOCK}: {dep.name} ({req}) missing; re-run lock"
                checked += 1
    for name, (version, _) in pins.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if Version(dist.version) != version:
            continue
        for dep in map(Requirement, dist.requires or []):
            if _applies(dep):
                assert canonicalize_name(dep.name) in pins, (
                    f"{LOCK}: {dep.name} (for {name}) missing; re-run lock"
                )
                checked += 1
    assert checked > 10
