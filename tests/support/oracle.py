"""The real alignstats v0.11 as a test oracle, and the built-in engine run the same way.

`find_or_build()` returns the two binaries (default and --enable-multithreading builds) from
`.tools/alignstats/`, building them with scripts/build-alignstats.sh when missing; `OracleUnavailable`
carries the reason to skip with (no tarball, no compiler/HTSlib headers). Every run of the real tool has a
timeout: with `-p`, and with `-P 2+` on SAM text, it can hang for good (ALIGNSTATS.md Q13).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "build-alignstats.sh"
TOOLS_DIR = Path(os.environ.get("ALIGNBATCH_ALIGNSTATS_DIR", str(ROOT / ".tools" / "alignstats")))
BUILD_UNAVAILABLE = 3  # build-alignstats.sh: tarball or build tools missing


class OracleUnavailable(Exception):
    """The real tool cannot be built here; the message is the reason to skip with."""


@dataclass(frozen=True)
class Outcome:
    """What one run produced. `exit_code` None means it timed out (and was killed)."""

    exit_code: int | None
    report: bytes
    stderr: str
    seconds: float

    @property
    def tool_lines(self) -> list[str]:
        """alignstats' own stderr lines: HTSlib's `[W::...]`/`[E::...]` lines come from two different
        HTSlib versions (1.16 against pysam's) and are not part of the comparison."""
        return [line for line in self.stderr.splitlines() if line.startswith("[AlignStats")]


@dataclass(frozen=True)
class Oracle:
    binary: Path
    binary_mt: Path

    def run(
        self,
        argv: Sequence[str],
        cwd: Path,
        *,
        report: str | None = None,
        stdin: Path | None = None,
        timeout: float = 30.0,
    ) -> Outcome:
        """Run the real tool (the multithreaded build when `-p` is asked for, as golden/COMMANDS.txt)."""
        exe = self.binary_mt if "-p" in argv else self.binary
        out = cwd / report if report else None
        if out is not None:
            out.unlink(missing_ok=True)
        t0 = time.monotonic()
        # own session so a hung run's children die with it; stdin closed so a missing -i cannot block
        stdin_fh = open(stdin, "rb") if stdin is not None else None  # noqa: SIM115 - closed below
        # argv[0] "alignstats", as in the golden runs: getopt's messages name the program by it
        proc = subprocess.Popen(
            ["alignstats", *argv],
            executable=str(exe),
            cwd=cwd,
            stdin=stdin_fh if stdin_fh is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            code = None
        finally:
            if stdin_fh is not None:
                stdin_fh.close()
        if code is not None and code < 0:
            code = 128 - code  # report a signal like a shell does (SIGSEGV -> 139, as in RESULTS.tsv)
        produced = out.read_bytes() if out is not None and out.exists() else stdout
        return Outcome(code, produced, stderr.decode("utf-8", "replace"), time.monotonic() - t0)


def find_or_build() -> Oracle:
    """The binaries, built at most once per session (an OracleUnavailable is remembered too)."""
    result = _find_or_build()
    if isinstance(result, OracleUnavailable):
        raise result
    return result


@functools.cache
def _find_or_build() -> Oracle | OracleUnavailable:
    try:
        return _locate()
    except OracleUnavailable as exc:
        return exc


def _locate() -> Oracle:
    exe, exe_mt = TOOLS_DIR / "alignstats", TOOLS_DIR / "alignstats-mt"
    if not (exe.exists() and exe_mt.exists()):
        if not BUILD_SCRIPT.exists():
            raise OracleUnavailable(f"{BUILD_SCRIPT} is missing")
        proc = subprocess.run(
            ["bash", str(BUILD_SCRIPT), str(TOOLS_DIR)], capture_output=True, text=True, timeout=900
        )
        if proc.returncode == BUILD_UNAVAILABLE:
            raise OracleUnavailable(f"real alignstats not buildable here: {proc.stderr.strip()}")
        if proc.returncode != 0:
            # a tarball or toolchain that is present but fails is a real problem, not a skip
            raise RuntimeError(f"scripts/build-alignstats.sh failed ({proc.returncode}):\n{proc.stderr}")
    return Oracle(exe, exe_mt)


def run_engine(
    argv: Sequence[str], cwd: Path, *, report: str | None = None, stdin: Path | None = None
) -> Outcome:
    """The built-in engine in this process (one numba load for a whole fuzz run), cwd = `cwd`.

    Only Python-level stdout/stderr are captured; HTSlib's own C-level lines (pysam) go to fd 2 and are
    not compared anyway (see Outcome.tool_lines).
    """
    from worker.engine.cli import main

    out = cwd / report if report else None
    if out is not None:
        out.unlink(missing_ok=True)
    err = io.StringIO()
    stdout = io.StringIO()
    previous = Path.cwd()
    saved_stdin = sys.stdin
    t0 = time.monotonic()
    try:
        os.chdir(cwd)
        if stdin is not None:
            # the engine reads sys.stdin.buffer, as `alignbatch-alignstats < file` would
            sys.stdin = io.TextIOWrapper(open(stdin, "rb"))  # noqa: SIM115 - closed below
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(stdout):
            code = main(list(argv))
    finally:
        if sys.stdin is not saved_stdin:
            sys.stdin.close()
            sys.stdin = saved_stdin
        os.chdir(previous)
        sys.stderr.flush()
    produced = (
        out.read_bytes()
        if out is not None and out.exists()
        else stdout.getvalue().encode("utf-8", "surrogateescape")
    )
    return Outcome(code, produced, err.getvalue(), time.monotonic() - t0)
