"""The part-file naming contract of a fan-out (issue #17), shared by the worker and the controller.

A shard child is given `--part-out PREFIX`, a prefix ending in `/` (an S3 prefix, or a local directory
path ending in `/`); it writes its part to `PREFIX + part_name(I, N)` = `PREFIX/part-<I>-of-<N>.json`,
I its shard index (`--shard-index`, else AWS_BATCH_JOB_ARRAY_INDEX), N the shard count (`--shard-of`).
The prefix is never interpreted beyond that: the controller puts a digest of the run's options in it, so
a part already present there is the same work done (the child then skips it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from core.errors import UsageError
from core.locations import Location, LocationError, parse_location

ARRAY_INDEX_ENV = "AWS_BATCH_JOB_ARRAY_INDEX"
_PART_RE = re.compile(r"part-(\d+)-of-(\d+)\.json\Z")


def part_name(index: int, count: int) -> str:
    return f"part-{index}-of-{count}.json"


def parse_part_name(name: str) -> tuple[int, int] | None:
    """(I, N) of a `part-<I>-of-<N>.json` name, None for any other name."""
    m = _PART_RE.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def parse_part_prefix(text: str, option: str = "--part-out") -> Location:
    """The prefix a shard child writes its part under; it must end in `/` (a usage error otherwise)."""
    if not text.endswith("/"):
        raise UsageError(
            f"{option} {text}: give a prefix ending in '/' (the worker writes part-<I>-of-<N>.json under it)"
        )
    try:
        loc = parse_location(text, allow_prefix=True)
    except LocationError as exc:
        raise UsageError(f"{option} {exc}") from None
    if loc.pinned:
        raise UsageError(f"{option} {text}: a prefix cannot be pinned; drop its ?versionId=/?etag= query")
    return loc


def part_location(prefix: Location, index: int, count: int) -> Location:
    """Where child `index` of `count` puts its part: the prefix followed by the part's name."""
    name = part_name(index, count)
    if prefix.is_s3:
        return Location.s3(prefix.bucket, prefix.key + name)
    return Location.file(prefix.path + name)


def _integer(option: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"cannot shard: {option}={text!r} is not an integer") from None


def shard_numbers(count_text: str, index_text: str | None, env: Mapping[str, str]) -> tuple[int, int]:
    """(I, N) of a shard child from `--shard-of N` and `--shard-index I` (or AWS_BATCH_JOB_ARRAY_INDEX),
    checked as the engine checks them (a usage error, exit 64, otherwise)."""
    count = _integer("--shard-of", count_text)
    if count < 1:
        raise UsageError(f"cannot shard: the number of shards must be at least 1, not {count}")
    if index_text is None:
        index_text = env.get(ARRAY_INDEX_ENV)
        if index_text is None:
            raise UsageError(
                f"cannot shard: no --shard-index and no {ARRAY_INDEX_ENV} (not an array job child)"
            )
        index = _integer(ARRAY_INDEX_ENV, index_text)
    else:
        index = _integer("--shard-index", index_text)
    if not 0 <= index < count:
        raise UsageError(f"cannot shard: shard index {index} outside 0..{count - 1}")
    return index, count
