"""Choosing the ahead-of-time kernels (worker/engine/aot.py): pure decisions, no compiler, no numba."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.engine import aot

V3 = frozenset(aot.REQUIRES["x86-64-v3"]) | {"sse2", "avx512f"}


def _sources(**changed: bytes) -> dict[str, bytes]:
    base = {name: f"source of {name}\n".encode() for name in aot.KERNEL_SOURCES}
    return {**base, **changed}


def _fake_build(root: Path, digest: str, target: str, machine: str = "x86_64") -> Path:
    directory = aot.build_dir(root, digest, target)
    directory.mkdir(parents=True)
    meta = {"digest": digest, "target": target, "machine": machine, "requires": list(aot.REQUIRES[target])}
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
    _fake_build(tmp_path, "d1", "x86-64-v3")
    _fake_build(tmp_path, "d1", "generic")
    chosen = aot.choose(tmp_path, "d1", "x86_64", V3)
    assert chosen is not None and chosen.target == "x86-64-v3"
    older = frozenset({"sse2", "sse4_2", "popcnt"})
    chosen = aot.choose(tmp_path, "d1", "x86_64", older)
    assert chosen is not None and chosen.target == "generic"


@pytest.mark.parametrize(
    ("digest", "machine", "why"),
    [("d2", "x86_64", "a build of another source"), ("d1", "aarch64", "a build for another machine")],
)
def test_a_build_of_another_source_or_machine_is_never_chosen(
    tmp_path: Path, digest: str, machine: str, why: str
) -> None:
    _fake_build(tmp_path, "d1", "generic")
    assert aot.choose(tmp_path, digest, machine, V3) is None, why


def test_unreadable_meta_or_missing_module_means_no_build(tmp_path: Path) -> None:
    broken = _fake_build(tmp_path, "d1", "x86-64-v3")
    (broken / "meta.json").write_text("{not json")
    assert aot.choose(tmp_path, "d1", "x86_64", V3) is None
    gone = _fake_build(tmp_path, "d1", "generic")
    aot.module_file(gone).unlink()
    assert aot.choose(tmp_path, "d1", "x86_64", V3) is None


def test_environment_switches_and_what_describe_says(tmp_path: Path) -> None:
    assert aot.load({aot.AOT_ENV: "0"}) is None
    assert aot.describe({aot.AOT_ENV: "0"}) == "jit (ALIGNBATCH_ENGINE_AOT=0)"
    empty = {aot.AOT_DIR_ENV: str(tmp_path)}
    assert aot.load(empty) is None
    assert aot.describe(empty) == f"jit (no build for this source under {tmp_path})"
    assert aot.aot_root(empty) == tmp_path
    assert aot.aot_root({}) == aot.HERE / "_aot"
