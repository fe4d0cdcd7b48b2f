"""One alignstats run: validate options, open files in the tool's order, process, write the report.

Also the programmatic entry points for split runs: `compute_part` processes some contigs of an indexed
input into `Accumulators`, which `merge` + `render_report` turn into the same report as a whole run.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Sequence

from worker.engine import kernel as k
from worker.engine.accumulators import Accumulators
from worker.engine.bed import BedFile
from worker.engine.budget import engine_cpus
from worker.engine.engine import Engine, EngineConfig, prefetch
from worker.engine.errors import BadInputError, ToolError
from worker.engine.options import Options, declared_format, load_bed, open_bed
from worker.engine.parallel import merge_in_order, plan_pieces, run_pieces
from worker.engine.report import ReportContext, build_report, render_json, render_tsv
from worker.engine.source import Header, InputFile, Region


def _info(opts: Options, message: str) -> None:
    if opts.verbose:
        print(f"[AlignStats INFO] {message}", file=sys.stderr, flush=True)


def validate(opts: Options, *, check_targets: bool = True) -> None:
    """The option checks. The tool checks -t only after opening the input (`run` follows it there);
    `check_targets=True` is for callers that want every option problem up front."""
    if not (opts.alignment or opts.capture or opts.wgs):
        raise ToolError("[AlignStats ERROR] At least one of -A, -C, or -W must be unset.")
    if opts.overlap_mc and opts.overlap_pos:
        raise ToolError("[AlignStats ERROR] Options -M and -O cannot be set simultaneously.")
    if check_targets and opts.capture and opts.targets is None:
        raise ToolError("[AlignStats ERROR] No target file specified for capture statistics.")


def _flush_warnings(opts: Options) -> None:
    for w in opts.warnings:
        print(w, file=sys.stderr)
    opts.warnings.clear()


def open_input(opts: Options, stop: int | None = None) -> InputFile:
    fmt = declared_format(opts)
    _flush_warnings(opts)
    _info(opts, f'Opening input file "{opts.input}" as {fmt.upper()} file.')
    if fmt == "cram" and not opts.reference:
        raise ToolError("[AlignStats ERROR] No reference specified for input CRAM alignment file.")
    inp = InputFile(opts.input, fmt, opts.reference, threads=opts.hts_threads, stop=stop)
    assert inp.header is not None
    return inp


def check_header(header: Header) -> None:
    """The tool sizes its coverage array by the longest @SQ, after loading the BED files."""
    if max(header.lengths, default=0) <= 0:
        raise ToolError("[AlignStats ERROR] No usable reference sequences in SAM header.")


_NO_REGIONS = "[AlignStats ERROR] No usable regions in regions file."
_NO_TARGETS = "[AlignStats ERROR] No usable targets in target file."
_NO_MASK = "[AlignStats WARNING] No usable targets in coverage mask file."  # a WARNING, yet exit 1


def _check_target_ends(opts: Options, targets: BedFile) -> None:
    for line in targets.lines:
        if line.end < 0:
            # alignstats would crash here (SIGSEGV, §4.7 / Q18); refuse with the line number instead.
            raise BadInputError(
                str(opts.targets),
                f"line {line.line_number}: BED end coordinate parses as {line.end + 1} for contig "
                f"{line.contig} (alignstats would crash)",
                "fix the line to 'contig<TAB>start<TAB>end' with end > start and no leading whitespace",
            )


def _check_mask_ends(opts: Options, mask: BedFile) -> None:
    for line in mask.lines:
        if line.end < line.start - 1:
            # The tool clears [start, end] with memset(end - start + 1): a line starting past its
            # (clamped) end is a negative size, and alignstats crashes (SIGSEGV) on that contig.
            raise BadInputError(
                str(opts.mask),
                f"line {line.line_number}: coverage mask line on {line.contig} starts at {line.start}, "
                f"past its end {line.end + 1} or the contig's (alignstats would crash)",
                "drop the line or fix it to 'contig<TAB>start<TAB>end' with start <= end <= contig length",
            )


def _region_order(regions: BedFile) -> list[Region]:
    """The tool visits regions by contig in header order, in file order within a contig."""
    order = sorted(regions.lines, key=lambda line: line.tid)
    return [Region(line.tid, line.start, line.end) for line in order]


def _warn_null_iterator(region: Region) -> None:
    print(f"[AlignStats WARNING] Unable to set iterator in region {region.tid}", file=sys.stderr)


def load_beds(opts: Options, header: Header) -> tuple[BedFile | None, BedFile | None, BedFile | None]:
    """Targets, mask, regions for a programmatic run (no messages in between, unlike `run`)."""
    targets = mask = regions = None
    if opts.regions:
        regions = load_bed(opts.regions, open_bed(opts.regions, "regions"), header, _NO_REGIONS)
    if opts.capture and opts.targets:
        targets = load_bed(opts.targets, open_bed(opts.targets, "target"), header, _NO_TARGETS)
        _check_target_ends(opts, targets)
    if opts.mask:
        mask = load_bed(opts.mask, open_bed(opts.mask, "coverage mask"), header, _NO_MASK)
        _check_mask_ends(opts, mask)
    return targets, mask, regions


def engine_config(opts: Options, targets: BedFile | None, mask: BedFile | None) -> EngineConfig:
    overlap = k.OVERLAP_MC if opts.overlap_mc else k.OVERLAP_POS if opts.overlap_pos else k.OVERLAP_NONE
    return EngineConfig(
        min_mapq=opts.min_mapq,
        required_flags=opts.required_flags,
        excluded_flags=opts.excluded_flags,
        min_baseq=opts.min_baseq,
        alignment=opts.alignment,
        wgs=opts.wgs,
        capture=opts.capture,
        keep_dups=opts.keep_dups,
        overlap=overlap,
        targets=targets,
        mask=mask,
        section_records=opts.max_records // 16,
    )


def report_context(opts: Options, inp_size: int, header: Header, targets, mask) -> ReportContext:
    masked = 0
    if mask is not None:
        masked = (len(header.names) + sum(line.end - line.start for line in mask.lines)) & 0xFFFFFFFF
    return ReportContext(
        input_name=opts.input,
        input_size=inp_size,
        alignment=opts.alignment,
        wgs=opts.wgs,
        capture=opts.capture,
        total_targets=len(targets.lines) if targets is not None else 0,
        masked_bases=masked,
    )


def render_report(acc: Accumulators, ctx: ReportContext, fmt: str = "json") -> str:
    pairs = build_report(acc, ctx)
    return render_tsv(pairs) if fmt == "tsv" else render_json(pairs)


def run(opts: Options) -> int:
    # The tool's order of messages and checks: option warnings, -v banner, option checks, input and
    # header, index, then every file opened, then the BEDs parsed (regions, targets, mask), then @SQ.
    _flush_warnings(opts)
    _info(opts, f"Running AlignStats v{'0.11'}")
    validate(opts, check_targets=False)
    inp = open_input(opts)
    out_fh = None
    created_output = False
    try:
        assert inp.header is not None
        header = inp.header
        if opts.regions is not None:
            inp.ensure_index()
        target_data = mask_data = regions_data = None
        if opts.capture:
            _info(opts, f'Opening target file "{"(null)" if opts.targets is None else opts.targets}".')
            if opts.targets is None:
                raise ToolError("[AlignStats ERROR] No target file specified for capture statistics.")
            target_data = open_bed(opts.targets, "target")
        if opts.output:
            _info(opts, f'Opening output file "{opts.output}".')
            try:
                out_fh = open(opts.output, "w", encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
            except OSError as exc:
                raise ToolError(
                    f'[AlignStats ERROR] Failed to open output file "{opts.output}".', f"{exc.strerror}"
                ) from None
            # Only a regular file is removed on failure. `-o /dev/null`, a FIFO or /dev/stdout must be
            # left alone: unlinking /dev/null as root replaced the device with a file for everyone.
            created_output = stat.S_ISREG(os.fstat(out_fh.fileno()).st_mode)
        else:
            print("[AlignStats WARNING] No output file specified, using stdout for report.", file=sys.stderr)
        if opts.mask:
            _info(opts, f'Opening coverage mask file "{opts.mask}".')
            mask_data = open_bed(opts.mask, "coverage mask")
        if opts.regions is not None:
            _info(opts, f'Opening regions file "{opts.regions}".')
            regions_data = open_bed(opts.regions, "regions")
        _info(opts, "Files opened successfully.")
        targets = mask = regions = None
        if regions_data is not None:
            _info(opts, "Loading regions file ...")
            regions = load_bed(str(opts.regions), regions_data, header, _NO_REGIONS)
            region_order = _region_order(regions)
            # the tool sets the first region's iterator while loading, the others as it reads on
            if inp.null_iterator(region_order[0]):
                _warn_null_iterator(region_order[0])
            _info(opts, "Regions file loaded successfully.")
        if target_data is not None:
            _info(opts, "Loading targets ...")
            targets = load_bed(str(opts.targets), target_data, header, _NO_TARGETS)
            _check_target_ends(opts, targets)
            _info(opts, "Targets loaded successfully.")
        if mask_data is not None:
            _info(opts, "Loading coverage mask targets ...")
            mask = load_bed(str(opts.mask), mask_data, header, _NO_MASK)
            _check_mask_ends(opts, mask)
            _info(opts, "Coverage mask targets loaded successfully.")
        check_header(header)
        config = engine_config(opts, targets, mask)
        kernel_threads = 2 if opts.threaded else 1
        pieces = None
        cpus = engine_cpus()
        if cpus > 1 and regions is None:
            pieces, _why_serial = plan_pieces(inp)
        _info(opts, "Start processing records.")
        if pieces is not None:
            inp.discard_body()
            acc = merge_in_order(run_pieces(config, header, opts.input, pieces, cpus, kernel_threads))
        else:
            acc = _run_serial(opts, inp, config, region_order if regions is not None else None)
        _info(opts, "Finished processing records.")
        ctx = report_context(opts, inp.size, header, targets, mask)
        text = render_report(acc, ctx, opts.report_format)
        _info(opts, "Writing report.")
        if out_fh is not None:
            out_fh.write(text)
            out_fh.close()
            out_fh = None
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
        _info(opts, "Finished successfully.")
        return 0
    except BaseException:
        if out_fh is not None:
            out_fh.close()
        if created_output and opts.output:
            # never leave an empty or partial report behind for an uploader to pick up
            with contextlib.suppress(OSError):
                os.unlink(opts.output)
        raise
    finally:
        inp.close()


def _run_serial(
    opts: Options, inp: InputFile, config: EngineConfig, region_order: list[Region] | None
) -> Accumulators:
    assert inp.header is not None
    engine = Engine(config, inp.header, opts.input, threads=2 if opts.threaded else 1)
    if region_order is not None:
        # Later regions' iterators are set while reading, which for inputs of fewer records than
        # one read section (-n / 16) all happens before the first record is processed; for larger
        # inputs the tool can interleave these warnings with the order warning (docs/engine.md).
        for region in region_order[1:]:
            if inp.null_iterator(region):
                _warn_null_iterator(region)
        engine.feed(prefetch(inp.region_chunks(region_order, unplaced=not opts.skip_unplaced)))
    elif inp.recycles_chunks:
        # BAM: inflate already runs on its own threads, bounded by its recycled buffers
        engine.feed(inp.chunks())
    else:
        # HTSlib-backed (SAM/CRAM): pysam reads and re-serialises one chunk ahead on a thread
        engine.feed(prefetch(inp.chunks()))
    return engine.finish()


def compute_part(
    opts: Options, contigs: Sequence[int], unplaced: bool, *, input_file: InputFile | None = None
) -> Accumulators:
    """Accumulators for the records of `contigs` (+ the unplaced '*' records) of an indexed input."""
    inp = input_file or open_input(opts)
    try:
        assert inp.header is not None
        targets, mask, _ = load_beds(opts, inp.header)
        inp.ensure_index()
        engine = Engine(
            engine_config(opts, targets, mask), inp.header, opts.input, threads=2 if opts.threaded else 1
        )
        engine.feed(inp.contig_chunks(contigs, unplaced))
        return engine.finish()
    finally:
        if input_file is None:
            inp.close()
