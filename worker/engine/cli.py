"""`alignbatch-alignstats`: the alignstats v0.11 command line, messages and exit codes, on our engine.

Option parsing follows the tool's POSIX getopt string `ACDF:MOP:T:UWb:f:hi:j:m:n:o:pq:r:t:v` with GNU
permutation; numbers are parsed like C `strtol(.., 10)` and cast like the tool (uint8/uint16), so odd
values behave the same (`-F 0x400` is 0, `-q 300` is 44). Extras (ours, outside the tool's option space so
they never change its behaviour): `--format json|tsv`, and for fan-out (shard_run.py) `--shard-of N`,
`--shard-index I`, `--part-out PATH`, `--merge-parts PART...`.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence

from core.exitcodes import ExitCode
from worker.engine.errors import BadInputError, EngineError
from worker.engine.options import Options, declared_format, flag_arg, int_arg

VERSION = "0.11"
# The banner is part of the compatibility contract (golden/cli_help.stderr.txt), so it names the HTSlib
# the reference build used rather than pysam's bundled one.
BANNER = f"AlignStats v{VERSION} (using HTSlib 1.16)"
OPTSTRING = "ACDF:MOP:T:UWb:f:hi:j:m:n:o:pq:r:t:v"

USAGE = """\
Usage: alignstats [-i INPUT] [-j FORMAT] [-o OUTPUT]
                  [-h] [-v] [-n NUMREADS] [-p] [-P INT]
                  [-r REGIONS] [-t TARGET] [-m COVMASK] [-T REFFASTA]
                  [-q INT] [-f INT] [-F INT] [-b INT]
                  [-D] [-M] [-O] [-U] [-A] [-C] [-W]

Runtime options:
    -h          Print usage information.
    -v          Print verbose runtime information output to stderr.
    -n INT      Maximum number of records to keep in memory.
    -p          Use separate threads for reading and processing records
                (requires builtin pthread support).
    -P INT      Number of HTSlib decompression threads to spawn.

File options:
    -i INPUT    Read INPUT as the input SAM, BAM, or CRAM file (stdin). Input
                must be coordinate-sorted for accurate results.
    -j FORMAT   Specify file format of input alignment file ("sam", "bam", or
                "cram" available, default guessed from filename or "sam").
    -o OUTPUT   Write report to OUTPUT (stdout).
    -r REGIONS  File in BED format listing which regions to process. By
                default, all available records are processed. This option
                requires the alignment file to be indexed.
    -t TARGET   File in BED format listing capture coverage regions. Required
                if capture coverage statistics are enabled.
    -m COVMASK  File in BED format listing regions of N bases in reference.
                Coverage counts will be suppressed for these regions.
    -T REFFASTA Indexed FASTA reference file for CRAM input alignment.

Processing options:
    -q INT      Only process records with minimum mapping quality of INT.
    -f INT      Only process records with all bits in INT set in FLAG.
    -F INT      Only process records with none of bits in INT set in FLAG.
    -b INT      Filter bases with base quality below INT from coverage
                statistics.

Reporting options:
    -D          Disable excluding duplicate reads from coverage statistics.
    -M          Enable excluding overlapping bases in paired-end reads by
                determining overlapping bases from MC tag.
    -O          Enable excluding overlapping bases in paired-end reads from
                first read in coordinate-sorted order from coverage statistics.
    -U          Disable processing unplaced unmapped reads (CHROM "*") when
                using the -r option.
    -A          Disable reporting alignment statistics.
    -C          Disable reporting capture coverage statistics.
    -W          Disable reporting whole genome coverage statistics.
"""

PROG = "alignstats"  # getopt messages name the tool as the real one does


class UsageExit(Exception):
    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message or "")
        self.code = code
        self.message = message


def getopt(
    argv: Sequence[str], optstring: str, positional: list[str] | None = None
) -> list[tuple[str, str | None]]:
    """GNU getopt with permutation; raises UsageExit(1, message) like the C tool on bad options.

    Non-option arguments are ignored, as alignstats does, or collected into `positional`."""
    takes_arg = {c for i, c in enumerate(optstring) if c != ":" and optstring[i + 1 : i + 2] == ":"}
    known = {c for c in optstring if c != ":"}
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            if positional is not None:
                positional.append(arg)
            continue  # non-option arguments are ignored by alignstats
        j = 1
        while j < len(arg):
            c = arg[j]
            j += 1
            if c not in known:
                raise UsageExit(1, f"{PROG}: invalid option -- '{c}'")
            if c in takes_arg:
                if j < len(arg):
                    out.append((c, arg[j:]))
                elif i < len(argv):
                    out.append((c, argv[i]))
                    i += 1
                else:
                    raise UsageExit(1, f"{PROG}: option requires an argument -- '{c}'")
                break
            out.append((c, None))
    return out


_LONG_WITH_VALUE = ("--format", "--shard-of", "--shard-index", "--part-out")


def _long_option(opts: Options, name: str, value: str) -> None:
    if name == "--format":
        if value not in ("json", "tsv"):
            raise UsageExit(int(ExitCode.USAGE), f"{PROG}: --format must be json or tsv, not {value!r}")
        opts.report_format = value
    elif name == "--part-out":
        opts.part_out = value
    else:
        try:
            number = int(value)
        except ValueError:
            raise UsageExit(int(ExitCode.USAGE), f"{PROG}: {name} needs an integer, not {value!r}") from None
        if name == "--shard-of":
            opts.shard_of = number
        else:
            opts.shard_index = number


def parse_args(argv: Sequence[str]) -> Options:
    opts = Options()
    rest: list[str] = []
    i = 0
    # our extra (long option, never a valid alignstats argument)
    while i < len(argv):
        a = argv[i]
        name = a.split("=", 1)[0]
        if name == "--merge-parts" and "=" not in a:
            opts.merge_parts = []
            i += 1
            continue
        if name in _LONG_WITH_VALUE:
            value = a.split("=", 1)[1] if "=" in a else (argv[i + 1] if i + 1 < len(argv) else "")
            i += 1 if "=" in a else 2
            _long_option(opts, name, value)
            continue
        rest.append(a)
        i += 1
    if opts.merge_parts is not None:
        # the merge reads only part files (and -o/--format): the run's options are inside them
        for c, v in getopt(rest, OPTSTRING, opts.merge_parts):
            if c == "o":
                opts.output = v
        if not opts.merge_parts:
            raise UsageExit(int(ExitCode.USAGE), f"{PROG}: --merge-parts needs part files")
        return opts
    if not rest:
        raise UsageExit(1)
    for c, v in getopt(rest, OPTSTRING):
        val = v or ""
        match c:
            case "A":
                opts.alignment = False
            case "C":
                opts.capture = False
            case "W":
                opts.wgs = False
            case "D":
                opts.keep_dups = True
            case "M":
                opts.overlap_mc = True
            case "O":
                opts.overlap_pos = True
            case "U":
                opts.skip_unplaced = True
            case "p":
                opts.threaded = True
            case "v":
                opts.verbose = True
            case "h":
                raise UsageExit(0)
            case "i":
                opts.input = val
            case "j":
                opts.format = val
            case "o":
                opts.output = val
            case "r":
                opts.regions = val
            case "t":
                opts.targets = val
            case "m":
                opts.mask = val
            case "T":
                opts.reference = val
            case "q":
                opts.min_mapq = int_arg(val) & 0xFF
            case "b":
                opts.min_baseq = int_arg(val) & 0xFF
            case "P":
                opts.hts_threads = int_arg(val) & 0xFF
            case "f":
                opts.required_flags = flag_arg("f", val, opts.warnings)
            case "F":
                opts.excluded_flags = flag_arg("F", val, opts.warnings)
            case "n":
                n = int_arg(val) & 0xFFFFFFFF  # the tool casts to uint32: -1 is not "too small"
                if n < 16384:
                    # the tool's own warning names -r here
                    opts.warnings.append("[AlignStats WARNING] Given value for -r is too small, using 16384")
                    n = 16384
                opts.max_records = n
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        opts = parse_args(args)
    except UsageExit as exc:
        if exc.message:
            print(exc.message, file=sys.stderr)
        if exc.code in (0, 1):
            sys.stderr.write(BANNER + "\n" + USAGE)
        return exc.code
    from worker.engine import memory

    memory.tune_malloc()  # before the run allocates: see memory.py
    # Imported here, not at the top, only so that `-h` and usage errors answer without loading numpy and
    # the kernel; the dependency is one-way (run never imports cli).
    from worker.engine.run import run

    try:
        if opts.merge_parts is not None or opts.shard_of is not None:
            from worker.engine.shard_run import run_merge, run_shard

            return run_merge(opts) if opts.merge_parts is not None else run_shard(opts)
        return run(opts)
    except EngineError as exc:
        sys.stderr.write("\n".join(exc.lines) + "\n")
        sys.stderr.flush()
        return exc.exit_code
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED_SIGINT)
    except BrokenPipeError:
        os._exit(1)
    except OSError as exc:
        # e.g. the report cannot be written: one line, a documented code, no traceback
        code = ExitCode.SCRATCH_FULL if exc.errno == errno.ENOSPC else ExitCode.INTERNAL
        print(f"[alignbatch-alignstats ERROR] I/O error: {exc}", file=sys.stderr)
        return int(code)
    except Exception as exc:
        print(
            f"[alignbatch-alignstats ERROR] internal error ({type(exc).__name__}: {exc}); please report it",
            file=sys.stderr,
        )
        return int(ExitCode.INTERNAL)


__all__ = ["BadInputError", "Options", "declared_format", "main", "parse_args"]


if __name__ == "__main__":
    sys.exit(main())
