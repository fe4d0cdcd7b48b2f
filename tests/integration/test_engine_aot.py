"""The kernels compiled ahead of time (worker/engine/aot.py, aot_build.py) against numba's JIT kernels.

A fresh build goes into a temporary directory (so this tests the build itself, not whatever `make setup`
left in the package); then every golden command that runs in-process is run twice, each time in one
subprocess: with that build, and with ALIGNBATCH_ENGINE_AOT=0. Both must write the golden bytes and exit
codes, for the best build this CPU runs and for the baseline one. The rest of the suite runs on whichever
the package holds (the AOT build after `make setup-test`), with every call checked against the compiled
signature (ALIGNBATCH_ENGINE_AOT_CHECK=1, tests/conftest.py), so this is where the JIT path keeps its
byte-identity. Needs gcc, g++, Python's headers and setuptools; skips without them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.integration.test_engine_golden import CASES, DELIBERATE, GOLDEN, SUBPROCESS, _rewrite
from tests.support.moto import DATA, SHARED_REFDATA
from worker.engine import aot

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]
DRIVER = """
import contextlib, io, json, os, sys
from worker.engine import kernel
from worker.engine.cli import main
plan = json.load(open(sys.argv[1]))
codes = {}
for case in plan:
    os.chdir(case["cwd"])
    with contextlib.redirect_stderr(io.StringIO()):
        codes[case["name"]] = main(case["args"])
print(json.dumps({"kernels": kernel.IMPLEMENTATION, "numba": "numba" in sys.modules, "codes": codes}))
"""


def _missing_toolchain() -> str | None:
    """What numba.pycc needs that this machine lacks (then the engine runs its JIT kernels)."""
    if not (shutil.which("gcc") and shutil.which("g++")):
        return "gcc and g++"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        return "Python's headers (python3-dev)"
    if importlib.util.find_spec("setuptools") is None:
        return "setuptools"
    return None


def _build(root: Path, target: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "worker.engine.aot_build", "--dir", str(root), "--target", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("engine kernels compiled ahead of time: "), proc.stdout


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = _missing_toolchain()
    if missing:
        pytest.skip(f"no {missing}: numba.pycc cannot build the kernels (the engine uses the JIT ones)")
    root = tmp_path_factory.mktemp("aot")
    _build(root, "auto")
    return root


@pytest.fixture(scope="module")
def generic_dir(tmp_path_factory: pytest.TempPathFactory, build_dir: Path) -> Path:
    """The baseline build alone (the image's fallback for CPUs without AVX2)."""
    root = tmp_path_factory.mktemp("aot-generic")
    _build(root, "generic")
    return root


def _plan(tmp_path: Path, label: str) -> tuple[list[dict[str, object]], dict[str, Path]]:
    have_shared = (SHARED_REFDATA / "a_wgs.bam").exists()
    plan: list[dict[str, object]] = []
    outs: dict[str, Path] = {}
    for case in CASES:
        if case.name in DELIBERATE or case.name in SUBPROCESS or case.exit_code == 139:
            continue
        if not case.small and not have_shared:
            continue
        out = tmp_path / label / f"{case.name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        cwd = DATA if case.small else SHARED_REFDATA
        plan.append({"name": case.name, "cwd": str(cwd), "args": _rewrite(case.args, out)})
        outs[case.name] = out
    return plan, outs


def _drive(tmp_path: Path, label: str, env: dict[str, str]) -> tuple[dict[str, object], dict[str, Path]]:
    plan, outs = _plan(tmp_path, label)
    plan_file = tmp_path / f"{label}.plan.json"
    plan_file.write_text(json.dumps(plan))
    base = {k: v for k, v in os.environ.items() if k not in (aot.AOT_ENV, aot.AOT_DIR_ENV)}
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(plan_file)],
        cwd=ROOT,
        env={**base, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1]), outs


def test_the_build_is_chosen_and_numba_is_never_imported(build_dir: Path, tmp_path: Path) -> None:
    env = {aot.AOT_DIR_ENV: str(build_dir)}
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from worker.engine import kernel as k; "
         "print(k.IMPLEMENTATION, 'numba' in sys.modules, k.RELEASES_GIL)"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    target = aot.choose(build_dir, aot.current_digest(), os.uname().machine, aot.this_cpu_flags())
    assert target is not None
    assert proc.stdout.split() == ["aot", target.target, "False", "False"]
    assert aot.describe(env) == f"aot {target.target}"


@pytest.mark.parametrize("which", ["best", "generic"])
def test_compiled_and_jit_kernels_write_the_golden_bytes(
    request: pytest.FixtureRequest, tmp_path: Path, which: str
) -> None:
    root = request.getfixturevalue("build_dir" if which == "best" else "generic_dir")
    compiled, outs_a = _drive(tmp_path, "aot", {aot.AOT_DIR_ENV: str(root)})
    jit, outs_j = _drive(tmp_path, "jit", {aot.AOT_ENV: "0"})
    assert str(compiled["kernels"]).startswith("aot ") and compiled["numba"] is False
    if which == "generic":
        assert compiled["kernels"] == "aot generic"
    assert jit["kernels"] == "jit" and jit["numba"] is True
    expected_codes = {c.name: c.exit_code for c in CASES}
    assert compiled["codes"] == jit["codes"]
    assert len(outs_a) >= 20  # the small cases alone are more than that
    for name, out in outs_a.items():
        assert compiled["codes"][name] == expected_codes[name], name
        golden = GOLDEN / f"{name}.json"
        want = golden.read_bytes() if golden.exists() else b""
        got_a = out.read_bytes() if out.exists() else b""
        got_j = outs_j[name].read_bytes() if outs_j[name].exists() else b""
        assert got_a == want, f"{name}: compiled kernels differ from the golden report"
        assert got_j == want, f"{name}: JIT kernels differ from the golden report"


def test_a_stale_build_is_ignored(build_dir: Path, tmp_path: Path) -> None:
    """A build of another source (an edited kernel, say) is never loaded: neither under another digest's
    name nor when its meta.json disagrees with the directory it sits in."""
    (good,) = [p for p in build_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    other_name = tmp_path / "renamed"
    shutil.copytree(good, other_name / good.name.replace(aot.current_digest(), "0" * 20))
    env = {aot.AOT_DIR_ENV: str(other_name)}
    assert aot.load(env) is None
    assert aot.describe(env).startswith("jit (no build for this source")
    other_meta = tmp_path / "meta"
    shutil.copytree(good, other_meta / good.name)
    meta_file = other_meta / good.name / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "digest": "0" * 20}))
    assert aot.load({aot.AOT_DIR_ENV: str(other_meta)}) is None
