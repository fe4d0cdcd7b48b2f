"""The shard plan: contigs balanced by mapped records, '*' in one group, deterministic."""

from __future__ import annotations

import pytest

from worker.engine.errors import ShardError
from worker.engine.shards import balance


def test_largest_first_onto_the_lightest_group() -> None:
    plan = balance([100, 60, 40, 30, 0], 2, unplaced=5)
    # 100 -> g0, 60 -> g1, 40 -> g1 (lighter), 30 -> g0 (tie: lower index); '*' to the lighter g1
    assert [s.tids for s in plan] == [(0, 3), (1, 2)]
    assert [s.load for s in plan] == [130, 105]
    assert [s.unplaced for s in plan] == [False, True]


def test_more_groups_than_contigs_leaves_empty_groups() -> None:
    plan = balance([10, 5], 4, unplaced=1)
    assert [s.tids for s in plan] == [(0,), (1,), (), ()]
    assert sum(s.unplaced for s in plan) == 1
    assert plan[2].unplaced  # the lightest (empty) group takes '*'


def test_contigs_with_only_unmapped_records_are_kept() -> None:
    plan = balance([0, 5], 2, totals=[3, 5])
    assert sorted(t for s in plan for t in s.tids) == [0, 1]


def test_deterministic_and_every_contig_once() -> None:
    mapped = [7, 7, 7, 3, 3, 1, 0, 9]
    a = balance(mapped, 3, 2)
    assert a == balance(list(mapped), 3, 2)
    assert sorted(t for s in a for t in s.tids) == [0, 1, 2, 3, 4, 5, 7]


def test_zero_groups_is_refused() -> None:
    with pytest.raises(ShardError):
        balance([1], 0)
