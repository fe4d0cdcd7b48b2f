"""Input checks that run before the tool, because alignstats itself does not refuse bad input.

The real alignstats reports partial numbers with exit 0 for truncated or corrupt BAMs and crashes on some
BED lines (ALIGNSTATS.md §5-7, Q11, Q18). Each check here turns such a case into one line naming the
file and the problem, and the BAD_INPUT (or USAGE) exit code. The functions take bytes or local paths
and a display name (the URI the user gave); fetching those bytes is the caller's job.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.errors import BadInput, UsageError
from worker.tools import ParsedCommand

# The empty BGZF block every complete BAM (and bgzipped file) ends with (SAM spec §4.1.2).
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
# CRAM 3.x end-of-file container (CRAM spec §9); CRAM 2.1 uses a different one, not checked here.
CRAM3_EOF = bytes.fromhex("0f000000ffffffff0fe0454f4600000000010005bdd94f0001000606010001000100ee63014b")
TAIL_BYTES = max(len(BGZF_EOF), len(CRAM3_EOF))

Format = Literal["bam", "cram", "sam", "bgzf", "unknown"]


@dataclass(frozen=True)
class HeaderInfo:
    fmt: Format
    contigs: tuple[str, ...]


def detect_format(head: bytes) -> Format:
    """Format from the first bytes (magic numbers), not the file name."""
    if head[:4] == b"CRAM":
        return "cram"
    if head[:4] == b"\x1f\x8b\x08\x04" and head[12:14] == b"BC":
        # A BGZF file; BAM when the first block decompresses to the BAM magic.
        import zlib

        try:
            block = zlib.decompressobj(-15).decompress(head[18:], 4)
        except zlib.error:
            return "bgzf"
        return "bam" if block[:4] == b"BAM\x01" else "bgzf"
    if head[:1] == b"@":
        return "sam"  # SAM text with a header; a header-less SAM has no @SQ and is refused anyway
    return "unknown"


def check_eof(display: str, fmt: Format, tail: bytes) -> None:
    """A BAM without its EOF block is truncated (or was cut while being written)."""
    if fmt in ("bam", "bgzf") and not tail.endswith(BGZF_EOF):
        raise BadInput(
            f"{display}: BAM is truncated (no BGZF end-of-file block); re-upload the complete file"
        )
    if fmt == "cram" and not tail.endswith(CRAM3_EOF):
        raise BadInput(
            f"{display}: CRAM is truncated (no end-of-file container); re-upload the complete file"
        )


@contextlib.contextmanager
def _quiet_htslib() -> Iterator[None]:
    import pysam

    # HTSlib prints warnings such as "EOF marker is absent" to stderr, which would break the JSON log
    # stream; our own checks say the same thing more clearly.
    old = pysam.set_verbosity(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pysam's "no BGZF EOF marker" for a probed prefix
            yield
    finally:
        pysam.set_verbosity(old)


def read_header(display: str, path: str | Path, fmt: Format) -> HeaderInfo:
    """Open the file (or a prefix of it) far enough to parse the header; refuse what alignstats cannot use."""
    import pysam

    if fmt in ("bgzf", "unknown"):
        raise BadInput(f"{display}: not a BAM, CRAM or SAM file (unrecognised content)")
    mode = {"bam": "rb", "cram": "rc", "sam": "r"}[fmt]
    try:
        with (
            _quiet_htslib(),
            pysam.AlignmentFile(str(path), mode, check_sq=False, ignore_truncation=True) as fh,
        ):
            header = fh.header.to_dict()
    except (OSError, ValueError) as exc:
        raise BadInput(f"{display}: cannot read the {fmt.upper()} header ({_short(exc)})") from None
    contigs = tuple(str(sq.get("SN", "")) for sq in header.get("SQ", []))
    if not contigs:
        raise BadInput(
            f"{display}: header has no @SQ reference sequences; alignstats needs an aligned, "
            "coordinate-sorted file"
        )
    return HeaderInfo(fmt, contigs)


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def check_cram_reference(display: str, fmt: Format, has_reference: bool) -> None:
    if fmt == "cram" and not has_reference:
        raise BadInput(f"{display}: CRAM input needs a reference FASTA; pass -T REF.fa (with REF.fa.fai)")


def check_usage(cmd: ParsedCommand) -> None:
    """Argument combinations alignstats accepts but that cannot mean what the user wants."""
    if cmd.profile.name != "alignstats":
        return
    if cmd.has_option("-C") and cmd.has_option("-t"):
        raise UsageError(
            "-C (disable capture statistics) together with -t TARGETS: the targets would be ignored; "
            "drop one of them"
        )


def check_target_bed(display: str, path: str | Path, contigs: tuple[str, ...]) -> None:
    """BED lines that make alignstats misread coordinates or crash (ALIGNSTATS.md §4.7, Q18).

    Coordinates are read as alignstats reads them, with the built-in engine's C-style `strtol`."""
    from worker.engine.bed import strtol  # numpy-backed module: only imported when a BED is checked

    known = set(contigs)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BadInput(f"{display}: cannot read BED file ({_short(exc)})") from None
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        if line[:1] in (b" ", b"\t"):
            raise BadInput(
                f"{display}: line {lineno} starts with whitespace, which alignstats misparses "
                "(coordinates shift); remove the leading whitespace"
            )
        token = line.split(None, 1)[0]
        contig = token.decode("utf-8", "surrogateescape")
        if token.startswith((b"#", b"browser", b"track")) or contig not in known:
            continue
        _start, pos = strtol(line, len(token))
        end, _ = strtol(line, pos)
        if end == 0:
            raise BadInput(
                f"{display}: line {lineno} ({contig}) has end coordinate 0 or no parsable end, "
                "which crashes alignstats; fix or drop the line"
            )
