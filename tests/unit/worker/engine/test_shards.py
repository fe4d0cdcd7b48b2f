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


def test_more_groups_than_contigs_leaves_empty_groups_and_star_rides_along() -> None:
    plan = balance([10, 5], 4, unplaced=1)
    assert [s.tids for s in plan] == [(0,), (1,), (), ()]
    assert [s.unplaced for s in plan] == [False, True, False, False]  # not a child of its own
    assert [s.empty for s in plan] == [False, False, True, True]


def test_star_gets_its_own_group_when_riding_along_would_make_the_slowest_group() -> None:
    plan = balance([10, 5], 4, unplaced=7)  # 5 + 7 > 10
    assert [s.tids for s in plan] == [(0,), (1,), (), ()]
    assert [s.unplaced for s in plan] == [False, False, True, False]
    assert [s.load for s in plan] == [10, 5, 7, 0]


def test_star_alone_without_placed_records() -> None:
    plan = balance([0, 0], 3, unplaced=5)
    assert [(s.tids, s.unplaced) for s in plan] == [((), True), ((), False), ((), False)]


@pytest.mark.parametrize(
    ("mapped", "totals", "unplaced", "n"),
    [
        ([10, 5], None, 1, 4),
        ([10, 5], None, 7, 4),
        ([1834494, 1114914, 731644, 308324, 0], None, 12404, 8),  # case e
        ([5, 0, 0], [5, 3, 3], 2, 6),  # contigs holding only placed unmapped reads
        ([9, 8, 7, 6, 5, 4, 3, 2, 1], None, 40, 4),  # fewer groups than contigs: nothing changes
        ([0, 0], None, 5, 3),
        ([100] * 300, None, 7, 64),  # many small contigs
        ([248, 242, 198, 190, 181, 171, 159, 145, 138, 134, 135, 133, 114, 107, 102, 90], None, 30, 16),
    ],
)
def test_useful_shards_plans_the_same_groups_without_the_empty_ones(mapped, totals, unplaced, n) -> None:
    wide = balance(mapped, n, unplaced, totals)
    k = max(1, sum(not s.empty for s in wide))
    narrow = balance(mapped, k, unplaced, totals)
    assert [(s.tids, s.unplaced) for s in narrow] == [(s.tids, s.unplaced) for s in wide if not s.empty]
    assert not any(s.empty for s in narrow) or k == 1


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


def test_useful_shards_counts_groups_with_something_to_read() -> None:
    from worker.engine.bamindex import BamIndex, ContigSpan
    from worker.engine.shardplan import useful_shards

    spans = (ContigSpan(0, 0, 10, 100, 0), None, ContigSpan(2, 10, 20, 40, 1))
    index = BamIndex(spans, 20, 3)
    assert useful_shards(index, 8) == 2  # two contigs, '*' with the lighter one
    assert useful_shards(index, 1) == 1
    assert useful_shards(BamIndex((None, None), 0, 9), 8) == 1  # only '*'
    assert useful_shards(BamIndex((None,), 0, None), 8) == 1


def test_no_group_is_opened_that_would_not_shorten_the_plan() -> None:
    # case e in 8: chr1 alone holds 46 % of the records, so chr2 and chr3 share a child (ending 0.6 %
    # after chr1's, within SLACK) and chrM takes '*' along: three children, not five
    plan = balance([1834494, 1114914, 731644, 308324, 0], 8, unplaced=12404)
    assert [(s.tids, s.unplaced) for s in plan if not s.empty] == [
        ((0,), False),
        ((1, 2), False),
        ((3,), True),
    ]
    assert max(s.load for s in plan) == 1114914 + 731644


def test_one_contig_and_a_few_unplaced_records_make_one_group() -> None:
    plan = balance([0, 900, 0], 9, unplaced=5)
    assert [(s.tids, s.unplaced) for s in plan if not s.empty] == [((1,), True)]


def test_many_small_contigs_still_spread_over_every_group() -> None:
    # a transcriptome or a draft assembly: no contig near 1 % of the records, so every group opens
    plan = balance([100] * 2000, 64)
    assert not any(s.empty for s in plan)
    assert max(s.load for s in plan) == 3200  # 200000 / 64, rounded up to whole contigs


def test_a_human_like_layout_opens_the_groups_that_end_near_chr1() -> None:
    # GRCh38-like lengths (Mbp) as record counts: N=9 is all used; with N=16 or 64 the plan stops
    # at the groups that end within 1 % of the records of chr1, the bound of any plan
    human = [248, 242, 198, 190, 181, 171, 159, 145, 138, 134, 135, 133, 114, 107, 102, 90, 83, 80, 59]
    human += [64, 47, 51, 156, 57, 1]
    assert sum(not s.empty for s in balance(human, 9)) == 9
    for n in (16, 64):
        plan = balance(human, n)
        assert max(s.load for s in plan) <= 248 + 0.01 * sum(human)
        assert sum(not s.empty for s in plan) == 12
