"""memory.py: the malloc thresholds and the depth array's page advice (Linux/glibc here)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from worker.engine import memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and madvise are Linux's")


def test_malloc_thresholds_are_accepted() -> None:
    assert memory.tune_malloc()


def test_a_large_array_gets_small_pages_and_keeps_its_contents() -> None:
    depth = np.zeros(50_000_001, dtype=np.uint32)
    assert memory.small_pages(depth)
    depth[::4096] = 7  # touching it afterwards is the point; the advice changes no value
    assert int(depth.sum()) == 7 * len(range(0, depth.shape[0], 4096))


def test_small_arrays_are_left_alone() -> None:
    assert not memory.small_pages(np.zeros(1000, dtype=np.uint32))
