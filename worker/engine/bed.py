"""BED parsing with alignstats' exact quirks (ALIGNSTATS.md §4.7).

The contig is the first whitespace token, but the two numbers are parsed C-`strtol`-style starting at
offset len(contig) from the start of the *raw* line, so leading whitespace shifts the parse. Intervals
are stored inclusive `[start, end - 1]`, per contig in file order, never sorted or merged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

_STRTOL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)([0-9]*)")
LONG_MAX = (1 << 63) - 1


def strtol(data: bytes, pos: int) -> tuple[int, int]:
    """C strtol(base 10) on data[pos:]: (value, end offset); no digits -> (0, pos)."""
    m = _STRTOL.match(data, pos)
    if m is None or not m.group(2):
        return 0, pos
    value = int(m.group(2))
    if m.group(1) == b"-":
        value = -value
    value = max(min(value, LONG_MAX), -LONG_MAX - 1)
    return value, m.end()


def c_int(value: int) -> int:
    """Truncate to a C int (32-bit two's complement), as alignstats stores coordinates."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


@dataclass
class BedLine:
    contig: str
    tid: int
    start: int
    end: int  # inclusive: BED end - 1
    line_number: int


@dataclass
class BedFile:
    path: str
    lines: list[BedLine] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines)

    def by_tid(self, n_ref: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per contig (header order): (starts, ends) arrays in file order."""
        starts: list[list[int]] = [[] for _ in range(n_ref)]
        ends: list[list[int]] = [[] for _ in range(n_ref)]
        for line in self.lines:
            starts[line.tid].append(line.start)
            ends[line.tid].append(line.end)
        return [
            (np.array(s, dtype=np.int64), np.array(e, dtype=np.int64))
            for s, e in zip(starts, ends, strict=True)
        ]


def parse_bed(path: str, data: bytes, names: dict[str, int], lengths: list[int]) -> BedFile:
    bed = BedFile(path)
    for number, raw in enumerate(_fgets_lines(data), start=1):
        tokens = raw.split()
        if not tokens:
            continue
        token = tokens[0]
        if token.startswith((b"#", b"browser", b"track")):
            continue
        contig = token.decode("utf-8", "surrogateescape")
        tid = names.get(contig)
        if tid is None:
            continue
        start, p = strtol(raw, len(token))
        end, _ = strtol(raw, p)
        start = c_int(start)
        end = c_int(end)
        if start < 0:
            bed.warnings.append(
                f"[AlignStats WARNING] BED start coordinate less than minimum allowed: {start} < 0"
            )
            start = 0
        if end > lengths[tid]:
            bed.warnings.append(
                "[AlignStats WARNING] BED end coordinate greater than maximum allowed: "
                f"{end} > {lengths[tid]}"
            )
            end = lengths[tid]
        bed.lines.append(BedLine(contig, tid, start, end - 1, number))
    return bed


def _fgets_lines(data: bytes) -> list[bytes]:
    """Lines as fgets with a 4096-byte buffer returns them (an over-long line comes back in pieces)."""
    out: list[bytes] = []
    parts = data.split(b"\n")
    for i, line in enumerate(parts):
        if i < len(parts) - 1:
            line += b"\n"
        elif not line:
            break
        while len(line) > 4095:
            out.append(line[:4095])
            line = line[4095:]
        out.append(line)
    return out
