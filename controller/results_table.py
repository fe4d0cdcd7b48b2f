"""The combined results table: one row per sample (inbox key), latest run wins.

Rendering is pure (rows → CSV / JSON Lines bytes); `write_table` puts both objects under
`<results root>/table/` through the object store (atomic on local disks, SSE + checksum on S3).
Columns: the provenance fields first in the order core.rows gives, then every metric key in the order
first seen, so a table mixing WGS and capture reports keeps one header.
"""

from __future__ import annotations

import csv
import io
import json
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


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"  # alignstats prints floats with %f
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def render_csv(rows: Sequence[Mapping[str, Any]]) -> bytes:
    out = io.StringIO()
    cols = columns(rows)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(cols)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in cols])
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
