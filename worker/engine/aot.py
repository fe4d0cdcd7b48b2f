"""The engine's kernels compiled ahead of time: found, checked and loaded without importing numba.

A process that JIT-loads the kernels pays ~0.3 s before its first record: importing numba (0.11 s),
initialising its CPU target (0.10 s) and loading each cached kernel. That is paid once per process, so
it is on the critical path of every run, of every fan-out child and of the two-core speed-up. The same
kernels compiled into an extension module (aot_build.py, `python -m worker.engine.aot_build`) import in
well under a millisecond and need only numpy at run time.

A compiled module is used only when it is certainly this source, for this machine:
- it lives in `<root>/<digest>-<target>/`, where `digest` is a sha256 of the kernel sources (and of this
  file, which holds the signature table), the Python ABI, numpy's major.minor and numba's version: an
  edited kernel, another Python, numpy or numba never runs against an old build;
- its meta.json names the machine (`platform.machine()`) and the CPU features the target needs, all of
  which must be in /proc/cpuinfo's flags (an x86-64-v3 build on an older CPU would die of SIGILL).
Anything else - no build, a stale one, another CPU, ALIGNBATCH_ENGINE_AOT=0 - leaves the numba JIT
kernels (kernel.py), which give the same bytes (tests/integration/test_engine_aot.py).

The compiled functions hold the GIL (pycc has no nogil), so with them the engine uses a process pool
for several cores instead of threads (parallel.py). Their wrappers check only an array's item size: a
wrong dtype of the same size, a strided view or a read-only array would be used as it is, silently.
Every call site passes exactly SIGNATURES (engine.py), and with ALIGNBATCH_ENGINE_AOT_CHECK=1 (the test
suite sets it) kernel.py checks every call against it.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import platform
import re
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

AOT_ENV = "ALIGNBATCH_ENGINE_AOT"
AOT_DIR_ENV = "ALIGNBATCH_ENGINE_AOT_DIR"
CHECK_ENV = "ALIGNBATCH_ENGINE_AOT_CHECK"
MODULE_NAME = "alignbatch_kernels"
HERE = Path(__file__).resolve().parent
# Everything the compiled code is made from, in a fixed order: the kernels, and this file (SIGNATURES)
# and the builder.
KERNEL_SOURCES = (
    "layout.py",
    "bamfields.py",
    "overlap.py",
    "records.py",
    "depth.py",
    "aot.py",
    "aot_build.py",
)


@dataclass(frozen=True)
class Arg:
    """One argument of a compiled kernel: an int (ndim 0) or a C-contiguous array of `dtype`."""

    dtype: str = ""
    ndim: int = 0
    writes: bool = False  # the kernel writes into it (so it must be writable)
    readonly: bool = False  # compiled for a read-only array (the record buffer)


_INT = Arg()
_U8_RO = Arg("uint8", 1, readonly=True)
_U32, _U32_W = Arg("uint32", 1), Arg("uint32", 1, writes=True)
_I64, _I64_W, _I64X2_W = Arg("int64", 1), Arg("int64", 1, writes=True), Arg("int64", 2, writes=True)
# The functions the Python side calls (kernel.py re-exports them) and the one signature each is compiled
# for: the types engine.py passes.
SIGNATURES: dict[str, tuple[Arg, ...]] = {
    "count_states": (_U32, _INT, _INT),
    "depth_histogram": (_U32, _INT, _INT, _I64_W),
    "high_coverage_non_target": (_U32, _INT, _I64, _I64),
    "max_depth": (_U32, _INT, _INT),
    "prefix_sum": (_U32_W, _INT),
    # buf, start, end, params, state, counts, aln, len_hist, ins_hist, ov, depth, scratch
    "process_records": (
        _U8_RO,
        _INT,
        _INT,
        _I64,
        _I64_W,
        _I64_W,
        _I64X2_W,
        _I64X2_W,
        _I64_W,
        _I64X2_W,
        _U32_W,
        _I64X2_W,
    ),
    "set_target_bits": (_U32_W, _INT, _I64, _I64),
    "target_tally": (_U32, _INT, _I64, _I64, _I64_W),
}
EXPORTS = tuple(SIGNATURES)
# Preferred first. x86-64-v3 (LLVM's name; AVX2, BMI1/2, FMA, F16C, LZCNT, MOVBE, XSAVE on top of
# x86-64-v2's CX16, LAHF, POPCNT, SSE3/SSSE3/SSE4.1/4.2): every instance family the compute environments
# launch has it. `generic` is the architecture's baseline and runs anywhere. Names as /proc/cpuinfo has
# them (pni is SSE3, abm brings LZCNT).
TARGETS = ("x86-64-v3", "generic")
REQUIRES = {
    "x86-64-v3": (
        "cx16",
        "lahf_lm",
        "popcnt",
        "pni",
        "ssse3",
        "sse4_1",
        "sse4_2",
        "avx",
        "avx2",
        "bmi1",
        "bmi2",
        "f16c",
        "fma",
        "abm",
        "movbe",
        "xsave",
    ),
    "generic": (),
}
BUILD_NAME = re.compile(r"^[0-9a-f]{20}-(" + "|".join(re.escape(t) for t in TARGETS) + r")$")


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


def source_digest(sources: dict[str, bytes], toolchain: dict[str, str] | None = None) -> str:
    """sha256 over the named sources in KERNEL_SOURCES order (name and length framed, so no two differ
    only by where a boundary falls), then the toolchain (Python ABI, numpy, numba)."""
    h = hashlib.sha256()
    for name in KERNEL_SOURCES:
        data = sources[name]
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    for key, value in sorted((toolchain or {}).items()):
        h.update(f"{key}={value}\0".encode())
    return h.hexdigest()[:20]


def dist_version(package: str) -> str:
    """An installed package's version from its dist-info directory's name, without importing it (numba
    takes 0.1 s, importlib.metadata 20 ms): 'absent', or 'unknown' when there is no such directory
    (then no build matches a real one, and the JIT kernels run)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return "absent"
    site = Path(next(iter(spec.submodule_search_locations))).parent
    try:
        names = os.listdir(site)
    except OSError:
        return "unknown"
    prefix = f"{package}-"
    for name in names:
        if name.startswith(prefix) and name.endswith((".dist-info", ".egg-info")):
            return name[len(prefix) :].rsplit(".", 1)[0].split("-")[0]
    return "unknown"


def toolchain() -> dict[str, str]:
    """What a build is made with besides the sources; the worker asks too, so nothing is imported."""
    return {
        "python": sys.implementation.cache_tag or "unknown",
        "numpy": ".".join(dist_version("numpy").split(".")[:2]),
        "numba": dist_version("numba"),
    }


def current_digest() -> str:
    return source_digest({name: (HERE / name).read_bytes() for name in KERNEL_SOURCES}, toolchain())


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


def this_cpu_flags() -> frozenset[str]:
    """This CPU's flags (/proc/cpuinfo); empty where there is no such file."""
    try:
        return cpu_flags(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        return frozenset()


def find(environ: dict[str, str] | None = None) -> tuple[Build | None, str]:
    """The build an engine process started with this environment should load, or (None, why not):
    the one decision load() acts on and describe() reports."""
    env = os.environ if environ is None else environ
    if env.get(AOT_ENV, "1") == "0":
        return None, f"{AOT_ENV}=0"
    try:
        digest = current_digest()
    except OSError:
        return None, "kernel sources unreadable"
    root = aot_root(env)
    machine, flags = platform.machine(), this_cpu_flags()
    build = choose(root, digest, machine, flags)
    return build, "" if build is not None else why_not(root, digest, machine, flags)


def load(environ: dict[str, str] | None = None) -> tuple[ModuleType, Build] | None:
    """The compiled kernels for this source and machine, or None (then the JIT kernels are used)."""
    build, _ = find(environ)
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


def why_not(root: Path, digest: str, machine: str, flags: frozenset[str]) -> str:
    """Pure-ish (reads root): why no build of this digest under root is usable here."""
    reasons = []
    for target in TARGETS:
        directory = build_dir(root, digest, target)
        build = read_build(directory)
        if build is None:
            continue
        if not build.path.is_file():
            reasons.append(f"{target}: its module file is missing")
        elif build.machine != machine:
            reasons.append(f"{target}: built for {build.machine}")
        elif not set(build.requires) <= flags:
            missing = " ".join(sorted(set(build.requires) - flags))
            reasons.append(f"{target}: this CPU lacks {missing}")
    if not reasons:
        return f"no build for this source and toolchain under {root}"
    return "; ".join(reasons)


def describe(environ: dict[str, str] | None = None) -> str:
    """Which kernels an engine process started with this environment should run, without loading them:
    'aot <target>' or 'jit (<why not aot>)'. For the worker's log, so a prediction: the load itself can
    still fail (then the engine runs the JIT kernels). Never imports numba."""
    build, why = find(environ)
    return f"aot {build.target}" if build is not None else f"jit ({why})"


def ours(directory: Path) -> bool:
    """A build directory this module made (name and meta.json): the only kind a clean-up may remove."""
    if not BUILD_NAME.match(directory.name) or not directory.is_dir():
        return False
    try:
        return json.loads((directory / "meta.json").read_text()).get("module") == MODULE_NAME
    except (OSError, ValueError, AttributeError):
        return False


def check_args(name: str, args: tuple[object, ...]) -> None:
    """Raise TypeError unless `args` are exactly the types `name` was compiled for (SIGNATURES)."""
    import numpy as np

    spec = SIGNATURES[name]
    if len(args) != len(spec):
        raise TypeError(f"{name}: {len(args)} arguments, compiled for {len(spec)}")
    for i, (value, arg) in enumerate(zip(args, spec, strict=True)):
        if arg.ndim == 0:
            if not isinstance(value, int | np.integer):
                raise TypeError(f"{name} argument {i}: {type(value).__name__}, compiled for an int")
            continue
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{name} argument {i}: {type(value).__name__}, compiled for an array")
        if value.dtype != np.dtype(arg.dtype) or value.ndim != arg.ndim or not value.flags.c_contiguous:
            raise TypeError(
                f"{name} argument {i}: {value.dtype}[{value.ndim}-d"
                f"{'' if value.flags.c_contiguous else ', strided'}], compiled for C-contiguous "
                f"{arg.dtype}[{arg.ndim}-d]"
            )
        if arg.writes and not value.flags.writeable:
            raise TypeError(f"{name} argument {i}: read-only, and the kernel writes into it")


def checked(name: str, func: Callable[..., object]) -> Callable[..., object]:
    """`func` with check_args before every call (ALIGNBATCH_ENGINE_AOT_CHECK=1: the test suite)."""

    def call(*args: object) -> object:
        check_args(name, args)
        return func(*args)

    call.__name__ = name
    return call
