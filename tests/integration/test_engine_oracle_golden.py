"""The oracle harness proves itself: every golden command replayed against the real alignstats we build.

If the binary built by scripts/build-alignstats.sh (Debian 12 HTSlib 1.16) reproduces every golden report,
stderr and exit code, then a difference the differential test finds between it and the engine is the
engine's (or a documented HTSlib version effect), not the harness's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_engine_golden import GOLDEN, GoldenCase, load_cases
from tests.support.moto import SHARED_REFDATA
from tests.support.oracle import Oracle, OracleUnavailable, find_or_build

# -p (the multithreaded build) can deadlock (Q13); a hang is retried once before it counts as a failure.
TIMEOUT = 120.0


@pytest.fixture(scope="session")
def oracle() -> Oracle:
    try:
        return find_or_build()
    except OracleUnavailable as exc:
        pytest.skip(str(exc))


CASES = [c for c in load_cases() if not c.name.startswith("e_large")]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_real_tool_reproduces_golden(case: GoldenCase, oracle: Oracle, tmp_path: Path) -> None:
    if not (SHARED_REFDATA / "a_wgs.bam").exists():
        pytest.skip("../shared/refdata is not present")
    # -o goes to a scratch file, never into the shared golden folder; stderr names it as given
    out = tmp_path / f"{case.name}.json"
    args = [str(out) if a.startswith("golden/") else a for a in case.args]
    stdin = SHARED_REFDATA / case.stdin if case.stdin else None
    for _attempt in range(2):
        result = oracle.run(args, SHARED_REFDATA, report=None, stdin=stdin, timeout=TIMEOUT)
        if result.exit_code is not None:
            break
    assert result.exit_code == case.exit_code, result.stderr
    stderr_file = GOLDEN / f"{case.name}.stderr.txt"
    expected_err = stderr_file.read_text() if stderr_file.exists() else ""
    assert result.stderr == expected_err.replace(f"golden/{case.name}.json", str(out))
    produced = result.report if case.stdout else (out.read_bytes() if out.exists() else b"")
    golden_json = GOLDEN / f"{case.name}.json"
    assert produced == (golden_json.read_bytes() if golden_json.exists() else b"")
