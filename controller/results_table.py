"""The combined results table: one row per sample (inbox key), latest run wins.

Rendering is pure (rows → CSV / JSON Lines bytes); `write_table` puts both objects under
`<results root>/table/` through the object store (atomic on local disks, SSE + checksum on S3).
Columns: the provenance fields first in the order core.rows gives, then every metric key in the order
first seen, so a table mixing WGS and capture reports keeps one header.

The CSV is opened in spreadsheets, and its text cells come from object keys anyone with write access to
the inbox chooses (`sample`, `inbox_key`, the URIs): a key such as `=cmd|' -C calc'!A0.bam` would be a
formula there. A text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is written with a
leading single quote (OWASP, "CSV Injection"); numbers, and text that is just a number, are unchanged.
The JSON Lines table is for programs and keeps every value exact. docs/security.md has the details.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.locations import parse_location
from core.objectstore import ObjectStore
from core.rows import PROVENANCE_COLUMNS


def columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    cols = list(PROVENANCE_COLUMNS)
    seen = set(cols)
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                cols.append(key)
    return cols


# What spreadsheets (Excel, LibreOffice, Google Sheets) take as the start of a formula or DDE call.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Text that is only a number ("-1.5", "+3", "-2e-05") is read as that number, never as a formula.
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def neutralise(text: str) -> str:
    """A text cell a spreadsheet will not evaluate: a leading `'` before a formula trigger."""
    if text.startswith(FORMULA_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6f}"  # alignstats prints floats with %f
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))  # starts with '{' or '[': never a formula
    return neutralise(str(value))


def render_csv(rows: Sequence[Mapping[str, Any]]) -> bytes:
    out = io.StringIO()
    cols = columns(rows)
    writer = csv.writer(out, lineterminator="\n")
    # QUOTE_MINIMAL quotes only the line terminator's characters: a lone '\r' in a cell would be written
    # bare and split the row for a reader; such a row is written with every cell quoted.
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(cols)
    for row in rows:
        cells = [_cell(row.get(c)) for c in cols]
        (quoted if any("\r" in c for c in cells) else writer).writerow(cells)
    return out.getvalue().encode("utf-8")


def render_jsonl(rows: Iterable[Mapping[str, Any]]) -> bytes:
    return b"".join(json.dumps(dict(r), ensure_ascii=False).encode("utf-8") + b"\n" for r in rows)


def table_locations(results_root: str) -> tuple[str, str]:
    root = parse_location(results_root, allow_prefix=True)
    return str(root.join("table/results.csv")), str(root.join("table/results.jsonl"))


def write_table(store: ObjectStore, results_root: str, rows: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    csv_uri, jsonl_uri = table_locations(results_root)
    store.write_bytes(parse_location(csv_uri), render_csv(rows), content_type="text/csv")
    store.write_bytes(parse_location(jsonl_uri), render_jsonl(rows), content_type="application/x-ndjson")
    return csv_uri, jsonl_uri
