"""Headless Chromium for page tests: the DOM after scripts ran, console messages, a screenshot.

Debian's `chromium` runs as root with --no-sandbox; every run gets a fresh profile directory and a
host resolver that resolves nothing, so a page that needs the network shows it as a failed load instead of
quietly fetching. `ensure_chromium()` installs the package once (root only; ALIGNBATCH_NO_APT=1 turns
that off) and returns None when no browser can be had, for the caller to skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_CONSOLE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)\]\s*(.*)$")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def find_chromium() -> str | None:
    for name in _CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> str | None:
    found = find_chromium()
    if (
        found
        or os.environ.get("ALIGNBATCH_NO_APT") == "1"
        or os.geteuid() != 0
        or not shutil.which("apt-get")
    ):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        try:
            subprocess.run(cmd, env=env, capture_output=True, timeout=900, check=True)
        except (subprocess.SubprocessError, OSError):
            return None
    return find_chromium()


@dataclass(frozen=True)
class PageRun:
    dom: str
    console: tuple[str, ...]  # every console message (log, error, uncaught exceptions)
    stderr: str


def load_page(chromium: str, url: str, *, screenshot: Path | None = None, size: str = "1400,2000") -> PageRun:
    """Load `url`, return the DOM after scripts ran and the console; with `screenshot`, also save a PNG
    (a second run: Chromium does one of --dump-dom / --screenshot per invocation)."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        base = [chromium, *_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0"]
        proc = subprocess.run(
            [*base, "--virtual-time-budget=5000", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}")
        console = tuple(m.group(1) for line in proc.stderr.splitlines() if (m := _CONSOLE.search(line)))
        if screenshot is not None:
            shot = subprocess.run(
                [*base, f"--screenshot={screenshot}", f"--window-size={size}", "--hide-scrollbars", url],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if shot.returncode != 0 or not screenshot.exists():
                raise RuntimeError(f"chromium screenshot failed ({shot.returncode}): {shot.stderr[-2000:]}")
    return PageRun(proc.stdout, console, proc.stderr)
