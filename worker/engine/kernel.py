"""The engine's numba kernels and array layout, re-exported under one name (`kernel as k`).

layout.py: array indices and sizes; bamfields.py: raw field readers; records.py: the per-record kernel;
depth.py: per-chromosome depth work. Importers keep using `k.NAME` so the split changes no call site.
"""

from __future__ import annotations

from worker.engine.depth import (  # noqa: F401
    count_states,
    depth_histogram,
    high_coverage_non_target,
    max_depth,
    prefix_sum,
    set_target_bits,
    target_tally,
)
from worker.engine.layout import *  # noqa: F403
from worker.engine.records import process_records  # noqa: F401
