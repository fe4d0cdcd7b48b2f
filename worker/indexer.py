"""`alignbatch-index -i BAM|CRAM [-o INDEX]`: build the .bai/.crai the alignstats `-r` mode needs.

Runs under the worker like any tool (`alignbatch-worker -- alignbatch-index -i s3://... -o s3://...`), so
it only ever sees local files. The index is built with pysam (HTSlib's indexer) into a temporary file
and renamed into place, so a failed run leaves no index behind. A CRAM index does not need the
reference: HTSlib builds .crai entries from container and slice headers (checked with REF_PATH and
REF_CACHE disabled), so `-T` is accepted for symmetry with alignstats but not used.

Exit codes: 0 ok, 64 usage, 65 damaged/unsupported input (truncated, no @SQ, SAM text, unsorted),
66 missing input, 70 internal.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from core.errors import BadInput, ObjectMissing, UsageError, WorkerError
from core.exitcodes import ExitCode
from core.objectstore import replace_into
from worker import checks

INDEX_SUFFIX = {"bam": (".bai", ".csi"), "cram": (".crai",)}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see alignbatch-index --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="alignbatch-index", description="Build a BAM (.bai/.csi) or CRAM (.crai) index.")
    p.add_argument("-i", "--input", required=True, help="coordinate-sorted BAM or CRAM")
    p.add_argument("-o", "--output", help="index path (default: INPUT.bai or INPUT.crai)")
    p.add_argument(
        "-T", "--reference", help="accepted for symmetry with alignstats; a CRAM index does not need it"
    )
    return p


def index_file(src: Path, dest: Path | None = None) -> Path:
    """Check `src`, build its index at `dest` atomically, return the index path."""
    import pysam

    if not src.is_file():
        raise ObjectMissing(f"{src}: no such file")
    size = src.stat().st_size
    with open(src, "rb") as fh:
        head = fh.read(65536)
        fh.seek(max(0, size - checks.TAIL_BYTES))
        tail = fh.read()
    fmt = checks.detect_format(head)
    if fmt == "sam":
        raise BadInput(f"{src}: SAM text cannot be indexed; convert it to BAM or CRAM first")
    if fmt not in INDEX_SUFFIX:
        raise BadInput(f"{src}: not a BAM or CRAM file")
    checks.check_eof(str(src), fmt, tail)
    checks.read_header(str(src), src, fmt)
    suffixes = INDEX_SUFFIX[fmt]
    if dest is None:
        dest = src.with_name(src.name + suffixes[0])
    if dest.suffix.lower() not in suffixes:
        raise UsageError(f"{dest}: a {fmt.upper()} index must end in {' or '.join(suffixes)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=dest.suffix, dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    args = ["-c"] if dest.suffix.lower() == ".csi" else []
    try:
        with checks._quiet_htslib():
            pysam.index(*args, "-o", str(tmp), str(src))
        if tmp.stat().st_size == 0:
            raise BadInput(f"{src}: the indexer produced an empty index")
        replace_into(tmp, dest)
    except pysam.utils.SamtoolsError as exc:
        detail = " ".join(str(exc).split())
        if "sort" in detail.lower() or "NO_COOR" in detail or "unsorted" in detail.lower():
            raise BadInput(f"{src}: not coordinate-sorted; sort it (samtools sort) before indexing") from None
        raise BadInput(f"{src}: cannot be indexed ({detail[-200:]})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    try:
        ns = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
        out = index_file(Path(ns.input), Path(ns.output) if ns.output else None)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except WorkerError as exc:
        print(f"alignbatch-index: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except Exception as exc:  # a bug: one line, no traceback
        print(f"alignbatch-index: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return int(ExitCode.INTERNAL)
    print(f"alignbatch-index: wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
