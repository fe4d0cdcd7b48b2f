"""Compile the engine's kernels ahead of time into an extension module (see aot.py for why and how it is
chosen at run time).

Usage: python -m worker.engine.aot_build [--target auto|x86-64-v3|generic] [--dir DIR]

`auto` (the default) builds x86-64-v3 when this CPU has its features and the architecture's baseline
otherwise. The module lands in DIR (default: worker/engine/_aot, or ALIGNBATCH_ENGINE_AOT_DIR) under
`<digest>-<target>/`, written to a temporary directory first and renamed into place, so a concurrent or
interrupted build never leaves a half-written module where the loader looks. Needs numba, setuptools and
a C compiler (numba.pycc compiles a small C wrapper); `make setup` and the worker's image run it.
Exit 0 when built (or already there), 1 with one line on stderr when it cannot be built: the engine then
runs its numba JIT kernels, same results, ~0.3 s more per process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from worker.engine import aot

EXIT_FAILED = 1


def signatures() -> dict[str, tuple[object, tuple[object, ...]]]:
    """Each exported kernel and its one argument-type signature: the types the engine passes (engine.py),
    the same specialisation the JIT path loads. A compiled function takes exactly these types (its
    wrapper does not convert), which the engine's fixed dtypes guarantee."""
    from numba import types

    from worker.engine import depth, records

    def arr(dtype: object, ndim: int = 1, readonly: bool = False) -> object:
        return types.Array(dtype, ndim, "C", readonly=readonly)

    u32, i64, i64x2 = arr(types.uint32), arr(types.int64), arr(types.int64, 2)
    n = types.int64
    return {
        "count_states": (depth.count_states, (u32, n, n)),
        "depth_histogram": (depth.depth_histogram, (u32, n, n, i64)),
        "high_coverage_non_target": (depth.high_coverage_non_target, (u32, n, i64, i64)),
        "max_depth": (depth.max_depth, (u32, n, n)),
        "prefix_sum": (depth.prefix_sum, (u32, n)),
        "process_records": (
            records.process_records,
            (arr(types.uint8, readonly=True), n, n, i64, i64, i64, i64x2, i64x2, i64, i64x2, u32, i64x2),
        ),
        "set_target_bits": (depth.set_target_bits, (u32, n, i64, i64)),
        "target_tally": (depth.target_tally, (u32, n, i64, i64, i64)),
    }


def pick_target(requested: str, flags: frozenset[str]) -> str:
    if requested != "auto":
        return requested
    if platform.machine() in ("x86_64", "AMD64") and set(aot.REQUIRES["x86-64-v3"]) <= flags:
        return "x86-64-v3"
    return "generic"


def build(root: Path, target: str) -> Path:
    """Compile into root/<digest>-<target>/ and return that directory."""
    digest = aot.current_digest()
    final = aot.build_dir(root, digest, target)
    if aot.read_build(final) is not None and aot.module_file(final).is_file():
        return final
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba.pycc's pending-deprecation notice
        from numba.core.typing import signature
        from numba.pycc import CC

        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{digest}-{target}.", dir=root))
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the module from a job's unprivileged user
        try:
            cc = CC(aot.MODULE_NAME)
            cc.output_dir = str(tmp)
            cc.verbose = False
            if target != "generic":
                cc.target_cpu = target
            for name, (func, args) in signatures().items():
                func.compile(args)  # to learn the return type the JIT infers
                ret = func.overloads[args].signature.return_type
                cc.export(name, signature(ret, *args))(func)
            cc.compile()
            meta = {
                "digest": digest,
                "target": target,
                "machine": platform.machine(),
                "requires": list(aot.REQUIRES[target]),
                "numba": _numba_version(),
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
            for stray in tmp.iterdir():
                if stray.is_dir():
                    shutil.rmtree(stray)
            try:
                os.rename(tmp, final)
            except OSError:
                if not aot.module_file(final).is_file():
                    raise
                # a concurrent build got there first: keep its module
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    # Old digests are dead weight (a few hundred KB each): keep only this one.
    for other in root.iterdir():
        if other.is_dir() and not other.name.startswith(digest) and not other.name.startswith("."):
            shutil.rmtree(other, ignore_errors=True)
    return final


def _numba_version() -> str:
    import numba

    return str(numba.__version__)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m worker.engine.aot_build", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--target", default="auto", choices=("auto", *aot.TARGETS))
    ap.add_argument(
        "--dir", type=Path, default=None, help="where to put the build (default: the package's _aot)"
    )
    args = ap.parse_args(argv)
    root = args.dir or aot.aot_root()
    target = pick_target(args.target, aot.cpu_flags(aot._read_cpuinfo()))
    began = time.monotonic()
    try:
        where = build(root, target)
    except Exception as exc:  # any failure means "no compiled kernels", said in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(
            f"aot_build: could not compile the engine's kernels ({type(exc).__name__}: {first}); "
            "the engine will use numba's JIT (same results, ~0.3 s more per run). "
            "Needs setuptools and a C compiler (gcc, python3-dev).",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(
        f"engine kernels compiled ahead of time: {where} (target {target}, {time.monotonic() - began:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
