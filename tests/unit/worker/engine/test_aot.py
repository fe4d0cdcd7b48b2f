"""Choosing the ahead-of-time kernels (worker/engine/aot.py): pure decisions, no compiler, no numba."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from worker.engine import aot, aot_build

V3 = frozenset(aot.REQUIRES["x86-64-v3"]) | {"sse2", "avx512f"}
D1 = "d1" * 10  # a digest as the build names carry them (20 hex digits)
D2 = "d2" * 10


def _sources(**changed: bytes) -> dict[str, bytes]:
    base = {name: f"source of {name}\n".encode() for name in aot.KERNEL_SOURCES}
    return {**base, **changed}


def _fake_build(root: Path, digest: str, target: str, machine: str = "x86_64") -> Path:
    directory = aot.build_dir(root, digest, target)
    directory.mkdir(parents=True)
    meta = {
        "module": aot.MODULE_NAME,
        "digest": digest,
        "target": target,
        "machine": machine,
        "requires": list(aot.REQUIRES[target]),
    }
    (directory / "meta.json").write_text(json.dumps(meta))
    aot.module_file(directory).write_bytes(b"not really a module")
    return directory


def test_digest_changes_with_any_kernel_source_and_with_where_bytes_fall() -> None:
    base = aot.source_digest(_sources())
    assert aot.source_digest(_sources()) == base
    for name in aot.KERNEL_SOURCES:
        assert aot.source_digest(_sources(**{name: b"edited"})) != base, name
    # moving a byte across a file boundary is a different source, not the same concatenation
    a = _sources(**{"layout.py": b"ab", "bamfields.py": b"c"})
    b = _sources(**{"layout.py": b"a", "bamfields.py": b"bc"})
    assert aot.source_digest(a) != aot.source_digest(b)


def test_cpu_flags_come_from_the_first_flags_line() -> None:
    info = "processor\t: 0\nflags\t\t: fpu sse2 avx2 bmi2\nbugs\t: x\nprocessor\t: 1\nflags\t: fpu\n"
    assert aot.cpu_flags(info) == {"fpu", "sse2", "avx2", "bmi2"}
    assert aot.cpu_flags("") == frozenset()
    assert aot.cpu_flags("Features\t: neon asimd\n") == frozenset()  # aarch64 names them otherwise


def test_v3_is_preferred_and_the_baseline_taken_on_a_cpu_without_avx2(tmp_path: Path) -> None:
    _fake_build(tmp_path, D1, "x86-64-v3")
    _fake_build(tmp_path, D1, "generic")
    chosen = aot.choose(tmp_path, D1, "x86_64", V3)
    assert chosen is not None and chosen.target == "x86-64-v3"
    older = frozenset({"sse2", "sse4_2", "popcnt"})
    chosen = aot.choose(tmp_path, D1, "x86_64", older)
    assert chosen is not None and chosen.target == "generic"


@pytest.mark.parametrize(
    ("digest", "machine", "why"),
    [(D2, "x86_64", "a build of another source"), (D1, "aarch64", "a build for another machine")],
)
def test_a_build_of_another_source_or_machine_is_never_chosen(
    tmp_path: Path, digest: str, machine: str, why: str
) -> None:
    _fake_build(tmp_path, D1, "generic")
    assert aot.choose(tmp_path, digest, machine, V3) is None, why


def test_unreadable_meta_or_missing_module_means_no_build(tmp_path: Path) -> None:
    broken = _fake_build(tmp_path, D1, "x86-64-v3")
    (broken / "meta.json").write_text("{not json")
    assert aot.choose(tmp_path, D1, "x86_64", V3) is None
    gone = _fake_build(tmp_path, D1, "generic")
    aot.module_file(gone).unlink()
    assert aot.choose(tmp_path, D1, "x86_64", V3) is None


def test_environment_switches_and_what_describe_says(tmp_path: Path) -> None:
    assert aot.load({aot.AOT_ENV: "0"}) is None
    assert aot.describe({aot.AOT_ENV: "0"}) == "jit (ALIGNBATCH_ENGINE_AOT=0)"
    empty = {aot.AOT_DIR_ENV: str(tmp_path)}
    assert aot.load(empty) is None
    assert aot.describe(empty) == f"jit (no build for this source and toolchain under {tmp_path})"
    assert aot.aot_root(empty) == tmp_path
    assert aot.aot_root({}) == aot.HERE / "_aot"


def test_the_toolchain_is_part_of_the_digest() -> None:
    base = aot.source_digest(_sources(), {"python": "cpython-311", "numpy": "2.4", "numba": "0.68.1"})
    for key, other in (("python", "cpython-312"), ("numpy", "1.26"), ("numba", "0.69.0")):
        changed = {"python": "cpython-311", "numpy": "2.4", "numba": "0.68.1", key: other}
        assert aot.source_digest(_sources(), changed) != base, key
    found = aot.toolchain()
    assert found["numba"] not in ("absent", "unknown")  # found without importing numba
    assert found["numpy"].count(".") == 1 and found["numpy"][0].isdigit()


def test_why_not_names_the_reason(tmp_path: Path) -> None:
    assert aot.why_not(tmp_path, D1, "x86_64", V3).startswith("no build for this source and toolchain")
    gone = _fake_build(tmp_path, D1, "generic")
    aot.module_file(gone).unlink()
    assert aot.why_not(tmp_path, D1, "x86_64", V3) == "generic: its module file is missing"
    _fake_build(tmp_path, D1, "x86-64-v3")
    assert "x86-64-v3: this CPU lacks avx2" in aot.why_not(tmp_path, D1, "x86_64", V3 - {"avx2"})


def test_a_module_that_will_not_load_leaves_the_jit_kernels(tmp_path: Path) -> None:
    """The fake build's module file is not an extension module: load() falls back instead of failing."""
    digest = aot.current_digest()
    flags = aot.this_cpu_flags()
    target = "x86-64-v3" if set(aot.REQUIRES["x86-64-v3"]) <= flags else "generic"
    _fake_build(tmp_path, digest, target, machine=os.uname().machine)
    assert aot.load({aot.AOT_DIR_ENV: str(tmp_path)}) is None


def test_clean_up_removes_only_its_own_old_builds_and_stale_temporaries(tmp_path: Path) -> None:
    keep = _fake_build(tmp_path, D1, "generic")
    old = _fake_build(tmp_path, D2, "generic")
    theirs = tmp_path / "important_project"
    theirs.mkdir()
    (theirs / "data.txt").write_text("not ours")
    lookalike = tmp_path / f"{D2}-generic-notes"  # near our naming, without our meta.json
    lookalike.mkdir()
    stale_tmp = tmp_path / f".{D2}-generic.abc123"
    stale_tmp.mkdir()
    fresh_tmp = tmp_path / f".{D1}-generic.def456"  # a build running right now
    fresh_tmp.mkdir()
    assert aot_build.remove_stale(tmp_path, D1) == [old]  # temporaries younger than an hour stay
    two_hours_on = time.time() + 7200
    assert set(aot_build.remove_stale(tmp_path, D1, now=two_hours_on)) == {stale_tmp, fresh_tmp}
    assert keep.is_dir() and theirs.is_dir() and lookalike.is_dir() and not old.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.zeros(10, np.float32), 0, 10), "float32"),
        ((np.zeros(20, np.uint32)[::2], 0, 10), "strided"),
        ((np.zeros((2, 5), np.uint32), 0, 10), "2-d"),
        (([0, 1, 2], 0, 3), "list"),
        ((np.zeros(10, np.uint32), 0.5, 10), "float"),
        ((np.zeros(10, np.uint32), 0), "2 arguments"),
    ],
)
def test_calls_that_do_not_match_the_compiled_signature_are_refused(args: tuple, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        aot.check_args("max_depth", args)


def test_a_read_only_array_where_the_kernel_writes_is_refused() -> None:
    depth = np.zeros(10, np.uint32)
    depth.flags.writeable = False
    with pytest.raises(TypeError, match="read-only"):
        aot.check_args("prefix_sum", (depth, 10))
    aot.check_args("max_depth", (depth, 0, 10))  # reading one is fine
