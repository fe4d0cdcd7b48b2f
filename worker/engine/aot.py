"""The engine's kernels compiled ahead of time: found, checked and loaded without importing numba.

A process that JIT-loads the kernels pays ~0.3 s before its first record: importing numba (0.11 s),
initialising its CPU target (0.10 s) and loading each cached kernel. That is paid once per process, so
it is on the critical path of every run, of every fan-out child and of the two-core speed-up. The same
kernels compiled into an extension module (aot_build.py, `python -m worker.engine.aot_build`) import in
well under a millisecond and need only numpy at run time.

A compiled module is used only when it is certainly this source, for this machine:
- it lives in `<root>/<digest>-<target>/`, where `digest` is the sha256 of the kernel sources and of the
  signature table (KERNEL_SOURCES); an edited kernel never runs against an old build;
- its meta.json names the machine (`platform.machine()`) and the CPU features the target needs, all of
  which must be in /proc/cpuinfo's flags (an x86-64-v3 build on an older CPU would die of SIGILL).
Anything else - no build, a stale one, another CPU, ALIGNBATCH_ENGINE_AOT=0 - leaves the numba JIT
kernels (kernel.py), which give the same bytes (tests/integration/test_engine_aot.py).

The compiled functions hold the GIL (pycc has no nogil), so with them the engine uses a process pool
for several cores instead of threads (parallel.py).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import platform
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

AOT_ENV = "ALIGNBATCH_ENGINE_AOT"
AOT_DIR_ENV = "ALIGNBATCH_ENGINE_AOT_DIR"
MODULE_NAME = "alignbatch_kernels"
HERE = Path(__file__).resolve().parent
# Everything the compiled code is made from, in a fixed order: the kernels and the signature table.
KERNEL_SOURCES = ("layout.py", "bamfields.py", "overlap.py", "records.py", "depth.py", "aot_build.py")
# The functions the Python side calls (kernel.py re-exports them).
EXPORTS = (
    "count_states",
    "depth_histogram",
    "high_coverage_non_target",
    "max_depth",
    "prefix_sum",
    "process_records",
    "set_target_bits",
    "target_tally",
)
# Preferred first. x86-64-v3 is AVX2/BMI2/FMA: every instance family the compute environments launch has
# it; `generic` is the architecture's baseline and runs anywhere.
TARGETS = ("x86-64-v3", "generic")
REQUIRES = {
    "x86-64-v3": ("avx", "avx2", "bmi1", "bmi2", "fma", "f16c", "movbe", "abm", "sse4_2", "popcnt"),
    "generic": (),
}


@dataclass(frozen=True)
class Build:
    """One compiled module on disk and what it was built for."""

    path: Path
    digest: str
    target: str
    machine: str
    requires: tuple[str, ...]


def aot_root(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env[AOT_DIR_ENV]) if env.get(AOT_DIR_ENV) else HERE / "_aot"


def source_digest(sources: dict[str, bytes]) -> str:
    """sha256 over the named sources in KERNEL_SOURCES order (name and length framed, so no two differ
    only by where a boundary falls)."""
    h = hashlib.sha256()
    for name in KERNEL_SOURCES:
        data = sources[name]
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:20]


def current_digest() -> str:
    return source_digest({name: (HERE / name).read_bytes() for name in KERNEL_SOURCES})


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The first `flags` line of /proc/cpuinfo (x86) as a set; empty when there is none."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def build_dir(root: Path, digest: str, target: str) -> Path:
    return root / f"{digest}-{target}"


def module_file(directory: Path) -> Path:
    return directory / (MODULE_NAME + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))


def read_build(directory: Path) -> Build | None:
    try:
        meta = json.loads((directory / "meta.json").read_text())
        return Build(
            path=module_file(directory),
            digest=str(meta["digest"]),
            target=str(meta["target"]),
            machine=str(meta["machine"]),
            requires=tuple(str(f) for f in meta["requires"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def usable(build: Build, digest: str, machine: str, flags: frozenset[str]) -> bool:
    """Pure: may this build run here, for this source?"""
    return build.digest == digest and build.machine == machine and set(build.requires) <= flags


def choose(root: Path, digest: str, machine: str, flags: frozenset[str]) -> Build | None:
    """The preferred usable build of this digest under root, or None."""
    for target in TARGETS:
        build = read_build(build_dir(root, digest, target))
        if build is not None and build.path.is_file() and usable(build, digest, machine, flags):
            return build
    return None


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def load(environ: dict[str, str] | None = None) -> tuple[ModuleType, Build] | None:
    """The compiled kernels for this source and machine, or None (then the JIT kernels are used)."""
    env = os.environ if environ is None else environ
    if env.get(AOT_ENV, "1") == "0":
        return None
    try:
        digest = current_digest()
    except OSError:
        return None
    build = choose(aot_root(env), digest, platform.machine(), cpu_flags(_read_cpuinfo()))
    if build is None:
        return None
    loader = importlib.machinery.ExtensionFileLoader(MODULE_NAME, str(build.path))
    spec = importlib.util.spec_from_file_location(MODULE_NAME, build.path, loader=loader)
    if spec is None:
        return None
    try:
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    except ImportError:
        return None  # e.g. built against another numpy ABI: the JIT kernels still work
    if not all(hasattr(module, name) for name in EXPORTS):
        return None
    return module, build


def describe(environ: dict[str, str] | None = None) -> str:
    """Which kernels an engine process started with this environment will run, without loading them:
    'aot <target>' or 'jit (<why not aot>)'. For the worker's log; never imports numba."""
    env = os.environ if environ is None else environ
    if env.get(AOT_ENV, "1") == "0":
        return f"jit ({AOT_ENV}=0)"
    try:
        digest = current_digest()
    except OSError:
        return "jit (kernel sources unreadable)"
    root = aot_root(env)
    build = choose(root, digest, platform.machine(), cpu_flags(_read_cpuinfo()))
    if build is not None:
        return f"aot {build.target}"
    built = [b for t in TARGETS if (b := read_build(build_dir(root, digest, t))) is not None]
    if not built:
        return f"jit (no build for this source under {root})"
    return f"jit (this CPU lacks a feature of {', '.join(b.target for b in built)})"
