"""Rewriting the tool's argv: every file argument pointed at its local path or scratch (or `-` for
the streamed input), and where the tool's outputs and captured stdout will appear.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from worker import checks
from worker.engines import Engine
from worker.inputs import Input
from worker.staging import Scratch, safe_name
from worker.tools import ParsedCommand, Slot


@dataclass(frozen=True)
class ArgvPlan:
    argv: list[str]
    outputs: dict[int, Path]  # output slot number -> where the tool writes it in scratch
    stdout_path: Path | None  # the tool's stdout captured here (alignstats report without -o)
    inherit_stdin: bool
    cwd: Path | None = None  # the tool's working directory (None: the worker's)


def plan_argv(
    scratch: Scratch,
    cmd: ParsedCommand,
    engine: Engine,
    inputs: dict[int, Input],
    streamed_slot: Slot | None,
    fmt: checks.Format | None,
    *,
    extra_args: Sequence[str] = (),
    in_scratch: bool = False,
) -> ArgvPlan:
    """The argv with every file argument pointing at scratch (or `-` for the streamed input).

    `in_scratch`: the tool runs in the scratch root and sees scratch files by relative paths (`in/0/x.bam`)
    and other files by absolute ones, so its argv is the same in every job of a fan-out, whatever the
    job id in the scratch path (the engine's part files record the input and BED paths, and the merge
    refuses parts whose paths differ). `extra_args` go where the tool's options go."""
    is_alignstats = cmd.profile.name == "alignstats"
    paths: dict[int, str] = {n: i.local_path for n, i in inputs.items() if i.local_path}
    out_paths: dict[int, Path] = {}
    for slot in cmd.outputs:
        if not slot.is_stdio:
            out_paths[slot.number] = scratch.output_dir(slot.number) / safe_name(slot.location.name)
            paths[slot.number] = str(out_paths[slot.number])
    out_slot = cmd.slot_for("-o")
    capture_stdout = is_alignstats and (out_slot is None or out_slot.is_stdio)
    extra: list[str] = list(extra_args)
    if in_scratch:
        paths = {n: _seen_from(p, scratch.root) for n, p in paths.items()}
    if streamed_slot is not None:
        paths[streamed_slot.number] = "-"
        if is_alignstats and not cmd.has_option("-j") and fmt in ("bam", "cram", "sam"):
            extra += ["-j", str(fmt)]  # stdin has no file name to guess the format from
    return ArgvPlan(
        argv=[*engine.argv, *cmd.render(paths, extra=extra)[1:]],
        outputs=out_paths,
        stdout_path=scratch.root / "stdout" if capture_stdout else None,
        # `-i -` passes the worker's own stdin through; otherwise the tool gets no terminal to read.
        inherit_stdin=any(slot.is_stdio for slot in cmd.inputs) and streamed_slot is None,
        cwd=scratch.root if in_scratch else None,
    )


def _seen_from(path: str, root: Path) -> str:
    """`path` as a tool running in `root` names it: relative inside `root`, absolute outside it."""
    full = os.path.abspath(path)
    rel = os.path.relpath(full, os.path.abspath(root))
    return full if rel == ".." or rel.startswith("../") else rel
