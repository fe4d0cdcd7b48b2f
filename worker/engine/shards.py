"""Fan-out of one indexed BAM over several jobs: the shard plan, the part files, and their merge.

The plan (`balance`, `plan_from_index`, in shardplan.py and importable from here) is pure: contigs into
N groups by the index's mapped-record counts (greedy, largest first, onto the lightest group), the
unplaced and unmapped '*' records in one group. Every child
of a shard array runs the same plan and processes only its group (shard_run.py); its part file holds
one `Accumulators` per contig, so the merge can put all pieces back in file order (what
`Accumulators.merge` needs for the Q9 stale word) whatever the grouping, and render the report a single
run gives, byte for byte (tests/integration/test_engine_shards.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict

from worker.engine.accumulators import Accumulators
from worker.engine.errors import ShardError
from worker.engine.report import ReportContext
from worker.engine.shardplan import Shard, balance, plan_from_index

# The plan lives in shardplan.py (light: the worker imports it); these names stay importable from here.
__all__ = [
    "Shard",
    "balance",
    "header_digest",
    "load_part",
    "merge_parts",
    "part_document",
    "plan_from_index",
]

PART_FORMAT = "alignbatch-engine-part/1"
ARRAY_INDEX_ENV = "AWS_BATCH_JOB_ARRAY_INDEX"


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
