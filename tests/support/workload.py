"""Inbox workloads for the scenarios: many small real BAMs under distinct keys, some with an index."""

from __future__ import annotations

import os
import random
from pathlib import Path

from tests.support.pipeline import Pipeline

SLOW = os.environ.get("ALIGNBATCH_SLOW") == "1"


def seed() -> int:
    """One seed per run (ALIGNBATCH_E2E_SEED to replay); printed in each scenario's figures."""
    return int(os.environ.get("ALIGNBATCH_E2E_SEED", "20261125"))


def drop_bams(
    pipe: Pipeline, data_dir: Path, count: int, *, prefix: str, with_index_every: int = 2
) -> list[str]:
    """Put `count` copies of i_edge.bam under distinct keys; every `with_index_every`-th gets its .bai
    first (no index step), the rest make the controller plan an index job. Returns the BAM keys."""
    bam = (data_dir / "i_edge.bam").read_bytes()
    bai = (data_dir / "i_edge.bam.bai").read_bytes()
    s3 = pipe.mb.client("s3")
    keys = []
    for i in range(count):
        rel = f"{prefix}/sample{i:04d}.bam"
        if with_index_every and i % with_index_every == 0:
            s3.put_object(Bucket=pipe.inbox_bucket, Key=pipe.inbox_prefix + rel + ".bai", Body=bai)
        s3.put_object(Bucket=pipe.inbox_bucket, Key=pipe.inbox_prefix + rel, Body=bam)
        keys.append(pipe.inbox_prefix + rel)
    return keys


def rng() -> random.Random:
    return random.Random(seed())
