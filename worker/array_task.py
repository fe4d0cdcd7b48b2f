"""An array job's child finds its own command: `alignbatch-worker --array-manifest URI` → line
AWS_BATCH_JOB_ARRAY_INDEX of the manifest the controller wrote before submitting the array.

A Batch array job gives every child the same command, so the per-object part (input, outputs, upstream
job ids) lives in the manifest: JSON Lines, line i = {"run_id": ..., "argv": ["alignbatch-worker", ...]}
for child i (controller/array_submit.py writes it, under <results root>/manifests/). The child then runs
exactly as a single job with that argv would. Anything else passes through unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from core.errors import BadInput, UsageError
from core.locations import LocationError, parse_location

FLAG = "--array-manifest"
INDEX_VARIABLE = "AWS_BATCH_JOB_ARRAY_INDEX"


def manifest_line(text: str, index: int) -> list[str]:
    """The argv (without the program name) of child `index` in a manifest's text (pure)."""
    lines = text.splitlines()
    if not 0 <= index < len(lines):
        raise BadInput(f"array manifest has {len(lines)} lines, no line for child {index}")
    try:
        entry = json.loads(lines[index])
        argv = entry["argv"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"array manifest line {index} is not a manifest entry: {exc}") from None
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise BadInput(f"array manifest line {index}: argv must be a non-empty list of strings")
    return argv[1:]


def resolve(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """`argv` itself, or the manifest's argv for this child when `argv` is `--array-manifest URI`."""
    if len(argv) < 1 or argv[0] != FLAG:
        return list(argv)
    if len(argv) != 2:
        raise UsageError(f"{FLAG} takes exactly one manifest URI and nothing else")
    raw_index = env.get(INDEX_VARIABLE, "")
    if not raw_index.isdigit():
        raise UsageError(f"{FLAG} needs {INDEX_VARIABLE} (set by Batch for an array job's children)")
    from core.objectstore import store_for

    try:
        loc = parse_location(argv[1])
    except LocationError as exc:
        raise UsageError(f"{FLAG}: {exc}") from None
    text = store_for(loc).read_bytes(loc).decode("utf-8")
    return manifest_line(text, int(raw_index))
