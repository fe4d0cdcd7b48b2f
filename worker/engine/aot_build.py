"""Compile the engine's kernels ahead of time into an extension module (see aot.py for why and how it is
chosen at run time).

Usage: python -m worker.engine.aot_build [--target auto|x86-64-v3|generic] [--dir DIR]

`auto` (the default) builds x86-64-v3 when this CPU has its features and the architecture's baseline
otherwise. The module lands in DIR (default: worker/engine/_aot, or ALIGNBATCH_ENGINE_AOT_DIR) under
`<digest>-<target>/`, written to a temporary directory first and renamed into place, so a concurrent or
interrupted build never leaves a half-written module where the loader looks; the only things it ever
removes under DIR are its own (older builds, by name and meta.json, and its stale temporary directories).
Needs numba, setuptools and
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
    """Each exported kernel and its numba argument types, from aot.SIGNATURES (the types engine.py
    passes: the same specialisation the JIT path loads)."""
    from numba import types

    from worker.engine import depth, records

    def numba_type(arg: aot.Arg) -> object:
        if arg.ndim == 0:
            return types.int64
        return types.Array(getattr(types, arg.dtype), arg.ndim, "C", readonly=arg.readonly)

    found = {}
    for name, spec in aot.SIGNATURES.items():
        func = getattr(records if name == "process_records" else depth, name)
        # pycc compiles an exported function with default flags, whatever its @njit says (its callees
        # keep theirs): an option that changes code would make the two kinds differ.
        harmless = {"cache": None, "nogil": None, "nopython": True, "boundscheck": False}
        extra = [
            key
            for key, value in func.targetoptions.items()
            if key not in harmless or (harmless[key] is not None and bool(value) != harmless[key])
        ]
        if extra:
            raise RuntimeError(f"{name} has @njit options pycc would ignore: {sorted(extra)}")
        found[name] = (func, tuple(numba_type(a) for a in spec))
    return found


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
    existing = aot.read_build(final)
    if existing is not None and existing.path.is_file():
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
            # No build time in it: the same inputs make the same directory.
            meta = {
                "module": aot.MODULE_NAME,
                "digest": digest,
                "target": target,
                "machine": platform.machine(),
                "requires": list(aot.REQUIRES[target]),
                **aot.toolchain(),
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
            for stray in tmp.iterdir():
                if stray.is_dir():
                    shutil.rmtree(stray)
            if final.exists():
                # half there (a module file gone, say): ours by name, so set it aside, then replace it
                aside = Path(tempfile.mkdtemp(prefix=".replaced.", dir=root))
                os.rename(final, aside / final.name)
                shutil.rmtree(aside, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError:
                if not aot.module_file(final).is_file():
                    raise
                # a concurrent build got there first: keep its module
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    remove_stale(root, digest)
    return final


def remove_stale(root: Path, digest: str, now: float | None = None) -> list[Path]:
    """Remove this tool's builds of other digests under root (dead weight: a few hundred KB each) and
    its temporary directories older than an hour (a killed build's); nothing else, whatever root is."""
    now = time.time() if now is None else now
    removed = []
    for entry in root.iterdir():
        old_build = aot.ours(entry) and not entry.name.startswith(digest)
        old_temp = _is_our_temp(entry) and now - entry.stat().st_mtime > 3600
        if old_build or old_temp:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _is_our_temp(entry: Path) -> bool:
    name = entry.name
    if not entry.is_dir() or not name.startswith("."):
        return False
    if name.startswith(".replaced."):
        return True
    stem = name[1:].rsplit(".", 1)[0]
    return aot.BUILD_NAME.match(stem) is not None


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
    target = pick_target(args.target, aot.this_cpu_flags())
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
