"""Fan-out across Batch jobs, the worker's half (#17): a shard child, and the merge of the parts.

The controller submits two forms of the alignstats command (docs/worker.md, "Fan-out"):

    shard child (array job, I from AWS_BATCH_JOB_ARRAY_INDEX unless --shard-index I is given):
        alignstats --shard-of N --part-out PREFIX/ <alignstats options> -i BAM
    merge (one job, after every child):
        alignstats --merge-parts [-o REPORT] PART...

Both always run the built-in engine (the real alignstats cannot split a run). A child:
1. HEADs its part `PREFIX/part-<I>-of-<N>.json` (worker/parts.py) and, when it is there, logs
   `shard.part_present` and exits 0 without touching the input: a retried fan-out redoes only the
   children that did not finish;
2. for an S3 input, stages a sparse file of the object's full size holding only the byte ranges its
   shard reads (header, its contigs' BGZF blocks, EOF block; worker/shard_ranges.py), fetched by ranged
   GETs pinned to the object's version and ETag, and logs `shard.staged` (bytes_fetched, object_size,
   ranges). A local input is read in place;
3. runs the engine in the scratch root, so every path it records in the part is the same in every
   child (worker/argv.py), and adds to the part the name and size the report must show
   (`report_input`: the URI as given minus its pin, the object's size) and the object's identity.
The merge downloads the parts (ordinary inputs), runs the engine's merge, and rewrites the report's
InputFileName/InputFileSize from the parts' `report_input`, exactly as a single run's report is
rewritten from its input: the merged report is the single run's, byte for byte.

Refusals (one line, exit 64 like the engine's own, starting `cannot shard:`): -r, stdin, CRAM/SAM, no
index, an index whose ranges leave gaps or that has no placed records.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.errors import AccessDenied, UsageError
from core.locations import Location
from core.objectstore import Stores
from worker import checks
from worker.engine.bamindex import BadIndexError, read_index
from worker.engine.shardplan import plan_from_index
from worker.engines import Engine, builtin_engine, configured_alignstats
from worker.inputs import Companion, Input
from worker.parts import part_location, shard_numbers
from worker.shard_ranges import CannotShard, shard_ranges
from worker.staging import Scratch, ensure_space
from worker.tools import Kind, ParsedCommand, Slot
from worker.transfer import TransferResult, Transfers

# The key a shard child adds to its part (the engine ignores keys it does not know).
REPORT_INPUT_KEY = "report_input"

REGIONS_REASON = "-r reads records region by region (overlapping regions twice), not contig by contig"
STDIN_REASON = "the input is stdin; shards read byte ranges of a file through its index"


@dataclass(frozen=True)
class ShardRequest:
    """A shard child: shard `index` of `count`, its part written to `part`."""

    index: int
    count: int
    prefix_slot: Slot  # the --part-out argument (a prefix ending in '/')
    part: Location  # prefix + part-<index>-of-<count>.json


@dataclass(frozen=True)
class MergeRequest:
    parts: tuple[Slot, ...]


FanOut = ShardRequest | MergeRequest


def fanout_request(cmd: ParsedCommand, env: Mapping[str, str]) -> FanOut | None:
    """The fan-out form of an alignstats command, or None for a single run; usage errors (64) for
    forms that cannot work, before any I/O."""
    if cmd.profile.name != "alignstats":
        return None
    prefix_slot = cmd.slot_for("--part-out")
    shard, merge = cmd.has_option("--shard-of"), cmd.has_option("--merge-parts")
    if shard and merge:
        raise UsageError("--shard-of and --merge-parts are two different jobs (a child, the merge); give one")
    if merge:
        if prefix_slot is not None or cmd.has_option("--shard-index"):
            raise UsageError("--part-out and --shard-index belong to a shard child, not to --merge-parts")
        parts = tuple(s for s in cmd.inputs if s.kind is Kind.PART)
        if not parts:
            raise UsageError("--merge-parts needs part files")
        return MergeRequest(parts)
    if not shard:
        if prefix_slot is not None or cmd.has_option("--shard-index"):
            raise UsageError("--part-out and --shard-index are only for a shard child (--shard-of N)")
        return None
    if prefix_slot is None:
        raise UsageError("cannot shard: --shard-of needs --part-out PREFIX/ (where the part goes)")
    if cmd.slot_for("-o") is not None:
        raise UsageError("-o has no meaning for a shard child: its part goes under --part-out")
    if cmd.has_option("-r"):
        raise CannotShard(REGIONS_REASON)
    main = cmd.slot_for("-i")
    if main is None or main.is_stdio:
        raise CannotShard(STDIN_REASON)
    index, count = shard_numbers(cmd.option_value("--shard-of") or "", cmd.option_value("--shard-index"), env)
    return ShardRequest(index, count, prefix_slot, part_location(prefix_slot.location, index, count))


def with_part_output(cmd: ParsedCommand, request: ShardRequest) -> ParsedCommand:
    """The command with its --part-out prefix replaced by the child's part file: staged in scratch
    under the part's name and published to `request.part` like any output."""
    old = request.prefix_slot
    new = replace(old, location=request.part, kind=Kind.PART)
    return replace(
        cmd,
        template=tuple(new if piece is old else piece for piece in cmd.template),
        slots=tuple(new if s is old else s for s in cmd.slots),
    )


def shard_index_args(cmd: ParsedCommand, request: ShardRequest) -> list[str]:
    """`--shard-index I` for the engine unless given: it must process the shard the part is named for."""
    return [] if cmd.has_option("--shard-index") else ["--shard-index", str(request.index)]


def fanout_engine(tool: str, log: Any) -> Engine:
    """The built-in engine: only it can split a run. A configured real alignstats is set aside for
    these forms (its reports are the built-in engine's, byte for byte), and the log says so."""
    configured = configured_alignstats(tool)
    if configured:
        log.info(
            "shard.builtin_engine", configured=configured, reason="the real alignstats cannot split a run"
        )
    return builtin_engine()


def part_present(stores: Stores, part: Location, log: Any) -> bool:
    """Whether this child's part already exists (a finished earlier attempt or run of the same work).

    A 403 counts as absent: S3 answers a HEAD of a missing key so to a role without list rights, and
    redoing a part is always correct, skipping one wrongly never is."""
    try:
        info = stores.for_location(part).head(part)
    except AccessDenied as exc:
        log.info("shard.part_head_denied", part=str(part), error=str(exc))
        return False
    if info is None:
        return False
    log.info("shard.part_present", part=str(part), size=info.size, etag=info.etag)
    return True


def check_format(main: Input, fmt: checks.Format) -> None:
    if fmt != "bam":
        raise CannotShard(
            f"{main.display} is {fmt.upper()}, not BAM; shards read BAM byte ranges through a .bai/.csi index"
        )


def stage_shard(
    request: ShardRequest,
    main: Input,
    dest: Path,
    index: Companion | None,
    header: checks.HeaderInfo,
    scratch: Scratch,
    transfers: Transfers,
    download: Callable[[Input, Path], None],
    log: Any,
) -> TransferResult:
    """The index next to `dest`, then only the shard's byte ranges of the object into a sparse `dest`."""
    if index is None:
        raise CannotShard(f"no .bai/.csi index next to {main.display} and no --index URI")
    index_path = Path(f"{dest}{index.suffix}")
    download(index.input, index_path)
    try:
        bam_index = read_index(str(index_path), len(header.contigs))
    except (BadIndexError, OSError, ValueError, struct.error, IndexError) as exc:
        raise CannotShard(f"index {index.input.display} unusable ({exc})") from None
    plan = plan_from_index(bam_index, request.count)
    shard = plan[request.index]
    size = main.info.size
    ranges = shard_ranges(bam_index, shard, size)
    fetched = sum(r.length for r in ranges)
    ensure_space(scratch, fetched, f"{len(ranges)} byte range(s) of {main.display}")
    result = transfers.download_ranges(main.info, dest, [(r.start, r.end) for r in ranges])
    main.local_path = str(dest)
    log.info(
        "shard.staged",
        uri=main.display,
        shard_index=request.index,
        shard_of=request.count,
        contigs=[header.contigs[t] for t in shard.tids if t < len(header.contigs)],
        unplaced=shard.unplaced,
        bytes_fetched=fetched,
        object_size=size,
        ranges=[r.as_list() for r in ranges],
    )
    return result


def annotate_part(path: Path, main: Input) -> None:
    """Add what the merge's report must name (the URI as given minus its pin, the object's size) and
    which content was read, so the merge can refuse parts of different objects or versions."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc[REPORT_INPUT_KEY] = {
        "name": main.report_name,
        "size": main.info.size,
        "etag": main.info.etag,
        "version_id": main.info.version_id,
    }
    path.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")


def merge_report_input(inputs: Mapping[int, Input], request: MergeRequest) -> tuple[str, int] | None:
    """(InputFileName, InputFileSize) for the merged report, from the parts; None when no part carries
    them (parts written by the engine outside the worker: the report stays as the engine wrote it)."""
    seen: dict[str, dict[str, Any] | None] = {}
    for slot in request.parts:
        inp = inputs.get(slot.number)
        if inp is None or inp.local_path is None:
            continue
        with open(inp.local_path, encoding="utf-8") as fh:
            value = json.load(fh).get(REPORT_INPUT_KEY)
        seen[inp.display] = value if isinstance(value, dict) else None
    values = list(seen.values())
    if not values or all(v is None for v in values):
        return None
    present = {d: v for d, v in seen.items() if v is not None}
    first_display, first = next(iter(present.items()))
    for display, value in seen.items():
        if value != first:
            raise UsageError(
                f"cannot merge: {display} and {first_display} were made from different inputs "
                f"({_describe(value)} / {_describe(first)}); run the shards again under a new prefix"
            )
    return str(first["name"]), int(first["size"])


def _describe(value: dict[str, Any] | None) -> str:
    if value is None:
        return "no report_input"
    return f"{value.get('name')} ETag {value.get('etag')}"
