"""The shard plan and the pieces of an indexed BAM, computed from its index alone.

Pure and light (no numpy, no numba): the engine's contig-parallel run (parallel.py) and its fan-out
(shards.py, shard_run.py) use these, and so does the worker, which stages only the byte ranges a shard
child reads (worker/shard_ranges.py) without loading the engine's kernels into its own process.

`balance` puts contigs into at most N groups by the index's mapped-record counts (greedy, largest first,
onto the lightest group, opening a group only while the plan would otherwise end past the largest
contig), the unplaced and unmapped '*' records in one group. `useful_shards` is how many of N
groups have anything to read: the controller sizes a shard array with it when the index is there at
planning (controller/index_layout.py), so no child is started only to find its group empty.
`pieces_from_index` gives each contig's virtual-offset range (and that of the '*' records), refusing an
index whose ranges leave gaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from worker.engine.bamindex import BamIndex
from worker.engine.errors import ShardError

# How far past its largest contig (a share of all records) a plan may end to save starting more children.
SLACK = 0.01


@dataclass(frozen=True)
class Shard:
    index: int
    tids: tuple[int, ...]  # in file order
    unplaced: bool
    load: int  # mapped records planned (what the groups are balanced on)

    @property
    def empty(self) -> bool:
        """Nothing to read (more groups than contigs): the planner need not start this child."""
        return not self.tids and not self.unplaced


def balance(
    mapped: Sequence[int], n: int, unplaced: int = 0, totals: Sequence[int] | None = None
) -> list[Shard]:
    """Contigs (mapped-record counts by tid) into at most `n` groups, largest first onto the lightest
    group; the '*' records last, as one more item.

    A child costs a start-up (a container on Batch, an interpreter and numpy locally), so while groups
    are left empty an item opens one only when adding it to the lightest open group would take that
    group past the largest contig plus SLACK of all records: the largest contig bounds every plan, and
    one that ends within SLACK of that bound needs no more children. The bound is fixed, so small
    contigs (a transcriptome's thousands) still spread over the groups. Once every group is open it is
    plain largest-first onto the lightest.

    `totals` (mapped + placed unmapped, by tid) says which contigs have records at all; without it,
    those with mapped records. Contigs without records are left out (nothing to read). Groups fill in
    index order and ties go to the lower index, so every child computes the same plan from the same
    index, and the open groups are those a plan for fewer groups makes (useful_shards).
    """
    if n < 1:
        raise ShardError(f"the number of shards must be at least 1, not {n}")
    present = totals if totals is not None else mapped
    tids = sorted((t for t, c in enumerate(present) if c > 0), key=lambda t: (-mapped[t], t))
    largest = max([mapped[tids[0]] if tids else 0, unplaced])
    bound = largest + SLACK * (sum(mapped[t] for t in tids) + unplaced)
    loads = [0] * n
    members: list[list[int]] = [[] for _ in range(n)]
    opened = 0

    def place(load: int) -> int:
        nonlocal opened
        if opened:
            g = min(range(opened), key=lambda i: (loads[i], i))
            if opened == n or loads[g] + load <= bound:
                return g
        opened += 1
        return opened - 1

    for tid in tids:
        g = place(mapped[tid])
        members[g].append(tid)
        loads[g] += mapped[tid]
    star = place(unplaced)
    loads[star] += unplaced
    return [Shard(i, tuple(sorted(members[i])), i == star, loads[i]) for i in range(n)]


def plan_from_index(index: BamIndex, n: int) -> list[Shard]:
    """The shard plan of an indexed BAM: what the planner and every child compute alike."""
    mapped = [s.mapped if s else 0 for s in index.spans]
    totals = [s.records if s else 0 for s in index.spans]
    return balance(mapped, n, index.unplaced or 0, totals)


def useful_shards(index: BamIndex, n: int) -> int:
    """How many of `n` shards would have anything to read: the array size worth starting. Planned
    with that many, the groups are the same ones (groups open in index order, and once all are open
    the placement does not depend on how many stay empty; tests/unit/worker/engine/test_shards.py)."""
    return max(1, sum(not s.empty for s in plan_from_index(index, n)))


@dataclass(frozen=True)
class Piece:
    """One contig's records (tid None: the unplaced '*' records), as virtual offsets into the BAM."""

    tid: int | None
    begin: int
    end: int | None  # None: to the end of the file
    records: int | None  # what the index promises (None: not stored for '*')
    first_record: int  # records before this piece in the file (numbers error messages)


def pieces_from_index(index: BamIndex, tids: Sequence[int], unplaced: bool) -> tuple[list[Piece] | None, str]:
    """Pieces for `tids` (file order kept) and optionally '*'; refuses an index whose ranges leave gaps."""
    pieces: list[Piece] = []
    before = 0
    prev_end: int | None = None
    wanted = set(tids)
    for span in index.spans:
        if span is None:
            continue
        # consecutive contigs must abut, or bytes between them would be skipped that a serial run reads
        if prev_end is not None and span.begin != prev_end:
            return None, f"index ranges of contig {span.tid} do not follow the previous contig's"
        prev_end = span.end
        if span.tid in wanted:
            pieces.append(Piece(span.tid, span.begin, span.end, span.records, before))
        before += span.records
    if prev_end is None:
        # no placed records: the index does not say where the header ends (one piece: serial is as good)
        return None, "no placed records"
    if index.unplaced_begin != prev_end:
        return None, "the unplaced records do not follow the last contig's"
    if unplaced:
        pieces.append(Piece(None, index.unplaced_begin, None, index.unplaced, before))
    return pieces, ""
