"""The engine's option model: what one alignstats v0.11 run was asked to do, and the helpers that read it.

Kept apart from `cli` (the command-line entry point) so that `run` can use the options, the input-format
rule and the BED loading without importing the CLI, which itself calls `run`: the module graph stays
acyclic (cli -> run -> options -> bed).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from worker.engine.bed import BedFile, parse_bed, strtol
from worker.engine.errors import ToolError


@dataclass
class Options:
    input: str = "-"
    format: str | None = None
    output: str | None = None
    verbose: bool = False
    max_records: int = 16384
    threaded: bool = False
    hts_threads: int = 1
    regions: str | None = None
    targets: str | None = None
    mask: str | None = None
    reference: str | None = None
    min_mapq: int = 0
    required_flags: int = 0
    excluded_flags: int = 0
    min_baseq: int = 0
    keep_dups: bool = False
    overlap_mc: bool = False
    overlap_pos: bool = False
    skip_unplaced: bool = False
    alignment: bool = True
    capture: bool = True
    wgs: bool = True
    report_format: str = "json"
    # fan-out (ours, long options only): one shard of the run into a part file, or the merge of parts
    shard_of: int | None = None
    shard_index: int | None = None
    part_out: str | None = None
    merge_parts: list[str] | None = None
    warnings: list[str] = field(default_factory=list)


def int_arg(text: str) -> int:
    value, _ = strtol(text.encode("utf-8", "surrogateescape"), 0)
    return value


def flag_arg(opt: str, text: str, warnings: list[str]) -> int:
    value = int_arg(text) & 0xFFFF
    if value > 4095:
        warnings.append(f"[AlignStats WARNING] Invalid flag received from -{opt} option. Setting to 0.")
        return 0
    return value


def declared_format(opts: Options) -> str:
    """The format alignstats opens the input as (its HTSlib mode; the content still decides the reader).

    `-j` keeps its first 4 bytes (a 5-byte buffer), lower-cased in ASCII only (C `tolower`), and must then
    be exactly sam/bam/cram: anything else warns and means SAM, without looking at the file name.
    """
    if opts.format:
        f = opts.format.encode("utf-8", "surrogateescape")[:4].lower()
        if f in (b"sam", b"bam", b"cram"):
            return f.decode()
        opts.warnings.append("[AlignStats WARNING] Unrecognized input format received from -j option.")
        return "sam"
    name = opts.input
    if name == "-":
        return "sam"
    if name.endswith("bam"):
        return "bam"
    if name.endswith("cram"):
        return "cram"
    if not name.endswith("sam"):
        opts.warnings.append("[AlignStats WARNING] Input filename has an unrecognized file extension.")
    return "sam"


def open_bed(path: str, kind: str) -> bytes:
    """The tool's `fopen` step (it opens every file before it parses any); the bytes for `load_bed`."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ToolError(
            f'[AlignStats ERROR] Failed to open {kind} file "{path}".', f"{exc.strerror}"
        ) from None


def load_bed(path: str, data: bytes, header, empty_message: str) -> BedFile:
    """Parse, printing the tool's per-line warnings; no usable line is an error (`empty_message` is the
    whole stderr line: for the coverage mask the tool logs it as a WARNING and still exits 1)."""
    bed = parse_bed(path, data, header.name_to_tid, list(header.lengths))
    for w in bed.warnings:
        print(w, file=sys.stderr)
    if not bed.lines:
        raise ToolError(empty_message)
    return bed


def read_bed(path: str, kind: str, header, empty_message: str) -> BedFile:
    return load_bed(path, open_bed(path, kind), header, empty_message)
