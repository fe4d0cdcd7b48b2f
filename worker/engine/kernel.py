"""The engine's kernels and array layout, re-exported under one name (`kernel as k`).

layout.py: array indices and sizes; bamfields.py: raw field readers; records.py: the per-record kernel;
depth.py: per-chromosome depth work. Importers keep using `k.NAME` so the split changes no call site.

Which compiled code runs is chosen here, once per process: the ahead-of-time module when one was built
for this exact source and this CPU (aot.py; no numba import at all), else numba's JIT kernels (cached).
Both are the same functions compiled by the same numba, and give the same bytes.
"""

from __future__ import annotations

import os

from worker.engine import aot
from worker.engine.layout import *  # noqa: F403

_compiled = aot.load()
if _compiled is not None:
    _module, BUILD = _compiled
    # pycc's wrappers check only item sizes; the test suite (ALIGNBATCH_ENGINE_AOT_CHECK=1) checks every
    # call against the compiled signature, so a call site that drifts fails there, not silently here.
    _checking = os.environ.get(aot.CHECK_ENV) == "1"
    _exported = {
        name: aot.checked(name, getattr(_module, name)) if _checking else getattr(_module, name)
        for name in aot.EXPORTS
    }
    count_states = _exported["count_states"]
    depth_histogram = _exported["depth_histogram"]
    high_coverage_non_target = _exported["high_coverage_non_target"]
    max_depth = _exported["max_depth"]
    prefix_sum = _exported["prefix_sum"]
    process_records = _exported["process_records"]
    set_target_bits = _exported["set_target_bits"]
    target_tally = _exported["target_tally"]
    IMPLEMENTATION = f"aot {BUILD.target}"
    # pycc's wrappers keep the GIL: threads would take turns, so several cores means processes
    RELEASES_GIL = False
else:
    BUILD = None
    from worker.engine.depth import (  # noqa: F401
        count_states,
        depth_histogram,
        high_coverage_non_target,
        max_depth,
        prefix_sum,
        set_target_bits,
        target_tally,
    )
    from worker.engine.records import process_records  # noqa: F401

    IMPLEMENTATION = "jit"
    RELEASES_GIL = True  # every kernel is nogil=True
