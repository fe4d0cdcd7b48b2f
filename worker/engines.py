"""Which program actually runs for a tool name, and its version (logged with every run).

For `alignstats`: the binary named by ALIGNBATCH_ALIGNSTATS_BIN, else `alignstats` on PATH, else the
built-in pysam engine `alignbatch-alignstats` (byte-identical reports). Other tools run as found on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

from core.errors import UsageError
from core.programs import find_program

_VERSION_RE = re.compile(r"\bv?(\d+\.\d+(?:\.\d+)?[\w.\-+]*)")


BUILTIN_NAME = "alignbatch-alignstats"


def kernels_of(env: dict[str, str] | None) -> str:
    """Which kernels the built-in engine will run under `env` ('aot x86-64-v3', 'jit (why)'), for the
    tool_start log line; reads a few small files, loads nothing."""
    from worker.engine import aot

    return aot.describe(env)


@dataclass(frozen=True)
class Engine:
    name: str  # "alignstats" (real binary), "alignbatch-alignstats" (built-in), or the tool's name
    argv: tuple[str, ...]  # what to exec in place of the tool name
    version: str | None

    @property
    def path(self) -> str:
        return self.argv[-1] if self.argv[0] == sys.executable else self.argv[0]


def _builtin_alignstats() -> tuple[str, ...]:
    found = find_program("alignbatch-alignstats")
    if found:
        return (found,)
    # Not installed as a console script (e.g. running from a checkout): the same module.
    return (sys.executable, "-m", "worker.engine.cli")


def resolve_engine(tool: str) -> Engine:
    base = os.path.basename(tool)
    if base == "alignstats":
        configured = os.environ.get("ALIGNBATCH_ALIGNSTATS_BIN")
        if configured:
            if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
                raise UsageError(
                    f"ALIGNBATCH_ALIGNSTATS_BIN={configured} is not an executable file; fix or unset it"
                )
            return Engine("alignstats", (configured,), _probe_version((configured,)))
        real = shutil.which("alignstats") if tool == base else (tool if os.access(tool, os.X_OK) else None)
        if real:
            return Engine("alignstats", (real,), _probe_version((real,)))
        argv = _builtin_alignstats()
        return Engine(BUILTIN_NAME, argv, _builtin_version())
    if base == BUILTIN_NAME:
        return Engine(BUILTIN_NAME, _builtin_alignstats(), _builtin_version())
    if os.sep in tool:
        if not (os.path.isfile(tool) and os.access(tool, os.X_OK)):
            raise UsageError(f"tool {tool} is not an executable file")
        return Engine(base, (tool,), None)
    found = find_program(tool)
    if not found:
        raise UsageError(f"tool {tool!r} not found on PATH or beside {sys.executable}")
    return Engine(base, (found,), None)


def builtin_engine() -> Engine:
    """The built-in engine, whatever is configured: the fan-out forms (--shard-of, --merge-parts) are
    its own; the real alignstats cannot split a run (worker/fanout.py)."""
    return Engine(BUILTIN_NAME, _builtin_alignstats(), _builtin_version())


def configured_alignstats(tool: str) -> str | None:
    """The real alignstats a run of `tool` would execute (ALIGNBATCH_ALIGNSTATS_BIN, else `alignstats`
    on PATH), without starting it; None when the built-in engine would run anyway."""
    base = os.path.basename(tool)
    if base != "alignstats":
        return None
    configured = os.environ.get("ALIGNBATCH_ALIGNSTATS_BIN")
    if configured:
        return configured
    return shutil.which("alignstats") if tool == base else (tool if os.access(tool, os.X_OK) else None)


def _builtin_version() -> str:
    from core.version import __version__

    return f"alignbatch {__version__} (alignstats 0.11 compatible)"


def _probe_version(argv: tuple[str, ...]) -> str | None:
    """alignstats prints `AlignStats v0.11 (using HTSlib 1.16)` first in its -h usage text."""
    try:
        proc = subprocess.run(
            [*argv, "-h"], capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = (proc.stderr or proc.stdout or "").strip().splitlines()
    if not first:
        return None
    m = _VERSION_RE.search(first[0])
    return first[0].strip()[:120] if m is None else m.group(1)
