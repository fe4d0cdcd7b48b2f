"""Fan-out of one indexed BAM over several jobs: the shard plan, the part files, and their merge.

`balance` is a pure function: contigs into N groups by the index's mapped-record counts (greedy,
largest first, onto the lightest group), the unplaced and unmapped '*' records in one group. Every child
of a shard array runs the same plan and processes only its group (shard_run.py); its part file holds
one `Accumulators` per contig, so the merge can put all pieces back in file order (what
`Accumulators.merge` needs for the Q9 stale word) whatever the grouping, and render the report a single
run gives, byte for byte (tests/integration/test_engine_shards.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from worker.engine.accumulators import Accumulators
from worker.engine.bamindex import BamIndex
from worker.engine.errors import ShardError
from worker.engine.report import ReportContext

PART_FORMAT = "alignbatch-engine-part/1"
ARRAY_INDEX_ENV = "AWS_BATCH_JOB_ARRAY_INDEX"


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
    """Contigs (mapped-record counts by tid) into `n` groups; the '*' records join the lightest group.

    `totals` (mapped + placed unmapped, by tid) says which contigs have records at all; without it,
    those with mapped records. Contigs without records are left out (nothing to read); groups may be
    empty when n exceeds the contigs. Ties go to the lower group index, so every child computes the same
    plan from the same index.
    """
    if n < 1:
        raise ShardError(f"the number of shards must be at least 1, not {n}")
    present = totals if totals is not None else mapped
    loads = [0] * n
    members: list[list[int]] = [[] for _ in range(n)]
    for tid in sorted((t for t, c in enumerate(present) if c > 0), key=lambda t: (-mapped[t], t)):
        g = min(range(n), key=lambda i: (loads[i], i))
        members[g].append(tid)
        loads[g] += mapped[tid]
    star = min(range(n), key=lambda i: (loads[i], i))
    loads[star] += unplaced
    return [Shard(i, tuple(sorted(members[i])), i == star, loads[i]) for i in range(n)]


def plan_from_index(index: BamIndex, n: int) -> list[Shard]:
    """The shard plan of an indexed BAM: what the planner and every child compute alike."""
    mapped = [s.mapped if s else 0 for s in index.spans]
    totals = [s.records if s else 0 for s in index.spans]
    return balance(mapped, n, index.unplaced or 0, totals)


def header_digest(names: Sequence[str], lengths: Sequence[int]) -> str:
    text = "\n".join(f"{n}\t{ln}" for n, ln in zip(names, lengths, strict=True))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def part_document(
    shard: Shard,
    plan: Sequence[Shard],
    pieces: Sequence[tuple[int | None, Accumulators]],
    ctx: ReportContext,
    options: Sequence[str],
    digest: str,
) -> dict:
    return {
        "format": PART_FORMAT,
        "shard_index": shard.index,
        "shard_of": len(plan),
        "plan": [[list(s.tids), s.unplaced] for s in plan],
        "header_sha256": digest,
        "options": list(options),
        "context": asdict(ctx),
        "pieces": [{"tid": tid, "acc": acc.to_json()} for tid, acc in pieces],
    }


def merge_parts(docs: Sequence[dict]) -> tuple[Accumulators, ReportContext]:
    """The whole run's accumulators and report context from every shard's part document."""
    if not docs:
        raise ShardError("no part files to merge")
    first = docs[0]
    for doc in docs:
        if doc.get("format") != PART_FORMAT:
            raise ShardError(f"not an engine part file (format {doc.get('format')!r})")
        for key in ("shard_of", "plan", "header_sha256", "options", "context"):
            if doc[key] != first[key]:
                raise ShardError(f"the parts come from different runs ({key} differs)")
    n = first["shard_of"]
    seen = sorted(doc["shard_index"] for doc in docs)
    # a group with nothing to read need not run: the planner may skip it (Shard.empty)
    needed = [i for i, (tids, star) in enumerate(first["plan"]) if tids or star]
    if len(set(seen)) != len(seen) or not set(needed) <= set(seen) or not set(seen) <= set(range(n)):
        raise ShardError(f"expected shards {needed} of 0..{n - 1} once each, got {seen}")
    pieces: list[tuple[int, Accumulators]] = []
    for doc in docs:
        tids, unplaced = doc["plan"][doc["shard_index"]]
        got = [p["tid"] for p in doc["pieces"]]
        if got != [*tids, *([None] if unplaced else [])]:
            raise ShardError(f"shard {doc['shard_index']} holds contigs {got}, its plan says {tids}")
        for p in doc["pieces"]:
            # file order: contigs by tid, the unplaced '*' records last
            order = p["tid"] if p["tid"] is not None else 1 << 62
            pieces.append((order, Accumulators.from_json(p["acc"])))
    merged = Accumulators()
    for _, acc in sorted(pieces, key=lambda item: item[0]):
        merged.merge(acc)
    return merged, ReportContext(**first["context"])


def load_part(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise ShardError(f"part file {path} unreadable ({exc})") from None
