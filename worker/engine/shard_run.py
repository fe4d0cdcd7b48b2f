"""The engine's two fan-out entries: one shard of an indexed BAM into a part file, and the merge.

Shard: `alignbatch-alignstats --shard-of N [--shard-index I] --part-out PART.json <alignstats options>`
(I defaults to AWS_BATCH_JOB_ARRAY_INDEX) reads only its group's contigs, by index byte range, and writes
the part file. Merge: `alignbatch-alignstats --merge-parts [-o REPORT] [--format tsv] PART.json ...`
renders the report the single run would write, byte for byte. Options the merge cannot split are
refused up front (ShardError, exit 64) with the reason, so the planner can fall back to one job.
"""

from __future__ import annotations

import json
import os
import stat
import sys

from worker.engine.bamindex import BadIndexError, index_path, read_index
from worker.engine.budget import engine_cpus
from worker.engine.errors import ShardError
from worker.engine.options import Options
from worker.engine.parallel import pieces_from_index, plan_pieces, run_pieces
from worker.engine.ranges import header_end
from worker.engine.run import (
    check_header,
    engine_config,
    load_beds,
    open_input,
    render_report,
    report_context,
    validate,
)
from worker.engine.shards import (
    ARRAY_INDEX_ENV,
    header_digest,
    load_part,
    merge_parts,
    part_document,
    plan_from_index,
)


def refusal(opts: Options) -> str | None:
    """Why these options cannot be split by contig (None: they can)."""
    if opts.regions is not None:
        return "-r reads records region by region (overlapping regions twice), not contig by contig"
    if opts.input == "-":
        return "the input is stdin; shards read byte ranges of a file through its index"
    return None


def signature(opts: Options) -> list[str]:
    """What every part of one run must agree on (the merge refuses parts of different runs)."""
    keys = [
        "input",
        "min_mapq",
        "required_flags",
        "excluded_flags",
        "min_baseq",
        "keep_dups",
        "overlap_mc",
        "overlap_pos",
        "alignment",
        "capture",
        "wgs",
        "targets",
        "mask",
        "max_records",
        "reference",
    ]
    return [f"{key}={getattr(opts, key)!r}" for key in keys]


def shard_index(opts: Options) -> int:
    if opts.shard_index is not None:
        return opts.shard_index
    text = os.environ.get(ARRAY_INDEX_ENV)
    if text is None:
        raise ShardError(f"no --shard-index and no {ARRAY_INDEX_ENV} (not an array job child)")
    try:
        return int(text)
    except ValueError:
        raise ShardError(f"{ARRAY_INDEX_ENV}={text!r} is not an integer") from None


def run_shard(opts: Options) -> int:
    reason = refusal(opts)
    if reason:
        raise ShardError(reason)
    n = opts.shard_of or 0
    index = shard_index(opts)
    if not 0 <= index < n:
        raise ShardError(f"shard index {index} outside 0..{n - 1}")
    if not opts.part_out:
        raise ShardError("--part-out PATH is required with --shard-of")
    for w in opts.warnings:
        print(w, file=sys.stderr)
    opts.warnings.clear()
    validate(opts)
    inp = open_input(opts, stop=_header_stop(opts.input))
    try:
        header = inp.header
        if header is None:
            raise ShardError("no header")
        everything, why = plan_pieces(inp)
        ipath = index_path(inp.path)
        if everything is None or ipath is None:
            raise ShardError(why)
        targets, mask, _ = load_beds(opts, header)
        check_header(header)
        bam_index = read_index(ipath, len(header.lengths))
        plan = plan_from_index(bam_index, n)
        shard = plan[index]
        pieces, why = pieces_from_index(bam_index, shard.tids, shard.unplaced)
        if pieces is None:
            raise ShardError(why)
        inp.discard_body()  # only the header was needed from the whole-file reader
        config = engine_config(opts, targets, mask)
        threads = 2 if opts.threaded else 1
        parts = run_pieces(config, header, inp.path, pieces, engine_cpus(), threads) if pieces else []
        ctx = report_context(opts, inp.size, header, targets, mask)
        doc = part_document(
            shard,
            plan,
            [(p.tid, acc) for p, acc in zip(pieces, parts, strict=True)],
            ctx,
            signature(opts),
            header_digest(header.names, header.lengths),
        )
    finally:
        inp.close()
    _write_atomically(opts.part_out, json.dumps(doc, separators=(",", ":")))
    return 0


def _header_stop(path: str) -> int | None:
    """Where the header's blocks end, from the index: the child's header read stops there, so it reads
    the header and its contigs' ranges only (the worker stages nothing else of an S3 object). None
    (read as a whole-file run does) when there is no usable index; the refusal then comes below."""
    ipath = index_path(path) if path != "-" else None
    if ipath is None:
        return None
    try:
        index = read_index(ipath)
    except (BadIndexError, OSError, ValueError):
        return None
    first = next((span.begin for span in index.spans if span is not None), None)
    return header_end(path, first) if first is not None else None


def run_merge(opts: Options) -> int:
    acc, ctx = merge_parts([load_part(p) for p in opts.merge_parts or []])
    text = render_report(acc, ctx, opts.report_format)
    if opts.output:
        _write_atomically(opts.output, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0


def _write_atomically(path: str, text: str) -> None:
    """A retried child or merge must never leave half a file for the next step to read.

    Only a regular file (or a new one) is replaced by rename: `/dev/null`, a FIFO or /dev/stdout are
    written in place, never renamed over (replacing /dev/null broke every shell on a machine once).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(text)
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
