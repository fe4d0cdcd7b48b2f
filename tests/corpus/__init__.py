"""The bad-input corpus: hostile object names and damaged files, one entry per case, with the outcome
every entry point must reach. tests/integration/test_hostile_corpus.py runs it through the controller's
intake on SQS (moto) and in local mode, and through local mode end to end (worker, engine, summary).

An entry's outcome is one of:
- `succeeded`: a legal (if odd) name; processed as given, its own report and row, nothing else's;
- `rejected`: a recorded `rejected` run whose reason contains `reason` (nothing submitted);
- `failed`: a run whose failing job ended in one line naming the problem (exit `exit_codes`), no traceback;
- `malformed`: (SQS only) a message that names no S3 object; left on the queue for the DLQ;
- `skipped`: (local only) never handed to intake; logged as `inbox.skipped` with `reason`.
Never a traceback, a stalled batch, or another object's report. docs/security.md explains each rule.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DATA = Path(__file__).resolve().parent.parent / "data"
Outcome = Literal["succeeded", "rejected", "failed", "malformed", "skipped"]


@dataclass(frozen=True)
class KeyCase:
    """An object name (relative to the inbox) whose content is a good BAM."""

    key: str
    outcome: Outcome
    why: str
    reason: str = ""  # for rejected: a piece of the recorded reason
    local: bool = True  # the name can exist as a local file (a file system folds '..', '//', '.')


# A key of exactly 1,024 bytes (S3's limit): too long to hold reports/<key>.alignstats.json.
_LONG = ("d" * 200 + "/") * 5
_LONG += "k" * (1024 - len(_LONG) - len(".bam")) + ".bam"
_CAFE_NFC = unicodedata.normalize("NFC", "café.bam")
_CAFE_NFD = unicodedata.normalize("NFD", "café.bam")

KEYS: tuple[KeyCase, ...] = (
    KeyCase("dot/../escape.bam", "rejected", "'..' would leave the results layout", "'..'", local=False),
    KeyCase("./here.bam", "rejected", "'.' segment: two names for one report", "'.'", local=False),
    KeyCase(
        "a//b.bam", "rejected", "empty segment: two names for one report", "empty path segment", local=False
    ),
    KeyCase(_LONG, "rejected", "1,024 bytes: the report key would pass S3's limit", "too long"),
    KeyCase("new\nline.bam", "rejected", "control character: splits logs and rows", "control character"),
    KeyCase("tab\there.bam", "rejected", "control character", "control character"),
    KeyCase("esc\x1b[2J.bam", "rejected", "terminal escape in a log line", "control character"),
    KeyCase("-i.bam", "succeeded", "leading '-': never taken for an option"),
    KeyCase("--help.bam", "succeeded", "leading '--'"),
    KeyCase("-o/-t.bam", "succeeded", "a directory with a leading '-'"),
    KeyCase("%41%2F%00.bam", "succeeded", "'%' is never decoded twice"),
    KeyCase("a+b c.bam", "succeeded", "S3 form-encodes '+' and ' ' in events"),
    KeyCase("{x}}{.bam", "succeeded", "braces are text"),
    KeyCase("victim{job_id:summary}.bam", "succeeded", "no placeholder is ever substituted"),
    KeyCase(_CAFE_NFC, "succeeded", "NFC and NFD are two keys: two runs, two reports"),
    KeyCase(_CAFE_NFD, "succeeded", "NFC and NFD are two keys: two runs, two reports"),
    KeyCase("=cmd|' -C calc'!A0.bam", "succeeded", "a CSV formula: neutralised in results.csv"),
    KeyCase("@SUM(1+1).bam", "succeeded", "a CSV formula: neutralised in results.csv"),
    KeyCase("$(touch pwned);`id`.bam", "succeeded", "no shell ever sees a key"),
    KeyCase("\u202eevil.bam", "succeeded", "bidi override: just a character"),
    KeyCase("ünï/样本 .BAM", "succeeded", "unicode, a space, an upper-case suffix"),
)


@dataclass(frozen=True)
class FileCase:
    """A damaged input, or a damaged option file, processed in local mode."""

    key: str
    content: bytes | str  # bytes, or the name of a file in tests/data
    why: str
    # An index beside it (bytes or a tests/data name): the plan skips the index step, the engine reads it.
    index: bytes | str | None = None
    exit_codes: tuple[int, ...] = (65,)  # EX_DATAERR; 66 (EX_NOINPUT) for a missing file


_BAD_BAMS = (
    ("zero.bam", b"", "zero bytes"),
    ("truncated.bam", "h_truncated.bam", "cut in the middle of a block"),
    ("not_bam.bam", "h_not_bam.bam", "not BGZF at all"),
    ("corrupt_middle.bam", "h_corrupt_middle.bam", "a corrupted block in the middle"),
    ("no_eof.bam", "h_no_eof.bam", "no BGZF EOF block"),
    ("nosq.bam", "g_nosq.bam", "a header without @SQ"),
)
_JUNK_INDEX = b"BAI\x01" + b"\x00" * 12
_GOOD, _GOOD_INDEX = "i_edge.bam", "i_edge.bam.bai"
FILES: tuple[FileCase, ...] = (
    *(FileCase(f"bad/{name}", content, f"{why}: read by the index tool") for name, content, why in _BAD_BAMS),
    *(
        FileCase(f"bad-indexed/{name}", content, f"{why}: read by the engine", index=_JUNK_INDEX)
        for name, content, why in _BAD_BAMS
    ),
    # alignstats itself exits 1 with "No usable targets in target file." (the engine is compatible).
    FileCase("bed-end0/x.bam", _GOOD, "a BED line with end 0", index=_GOOD_INDEX, exit_codes=(1,)),
    FileCase("bed-garbage/x.bam", _GOOD, "a BED file of binary garbage", index=_GOOD_INDEX, exit_codes=(1,)),
    FileCase("bed-missing/x.bam", _GOOD, "a BED file that is not there", index=_GOOD_INDEX, exit_codes=(66,)),
)

# [[pipeline.prefix]] options for the BED cases (paths filled in by the test: `{corpus}`).
BED_PREFIXES = {
    "bed-end0/": str(DATA / "targets_end0.bed"),
    "bed-garbage/": "{corpus}/garbage.bed",
    "bed-missing/": "{corpus}/no-such.bed",
}
GARBAGE_BED = b"\x00\xff\xfe chr1\tx\ty\n\x1f\x8b\x08garbage\nchr1\t-5\t10\n"


def data(content: bytes | str) -> bytes:
    """Bytes as given, or a tests/data file's."""
    return content if isinstance(content, bytes) else (DATA / content).read_bytes()
