"""The run history: every sample row ever finished, in one Parquet file (pyarrow), for the batch report's
30-day trends and for people who want to ask a year of runs a question (`pandas.read_parquet`, DuckDB,
polars all read it directly).

Where: the controller keeps it on local disk beside its ledger (suggested `<state dir>/history.parquet`)
and may copy it to `RESULTS/history/runs.parquet`; this module only needs a local path.

Append is safe against a crash and against a second appender on the same host: an exclusive `flock` on
`<file>.lock` serialises appenders, the merged table is written to a temporary file in the same directory,
fsynced and renamed over the old one, so a reader sees the old file or the new one, never a torn one.
Rows are deduplicated by run_id, the newest append winning (a re-run summary replaces its row).

Schema (stable, so files from different days concatenate without type drift): alignstats metrics by the
spec's types (…Pct, …Mean, …StandardDeviation float64; every other metric int64), `input_size` int64,
`written_ts` a UTC timestamp parsed from `written_at`, `qc_failed_rules` as JSON text, every other column
text. Rewriting the whole file per append costs time linear in history size (benchmarks/batch_report.py
measures it); the finish stage should append a pass's rows in one call.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.qc import METRICS

TIME_COLUMN = "written_ts"
KEY_COLUMN = "run_id"
_FLOAT_SUFFIXES = ("Pct", "Mean", "StandardDeviation")
_INT_COLUMNS = frozenset({"input_size"})
# zstd: a year of rows (~230 mostly-numeric columns) is several times smaller than with snappy, and
# reading it back is still far faster than rendering the report.
_COMPRESSION = "zstd"


def column_type(name: str) -> pa.DataType:
    if name == TIME_COLUMN:
        return pa.timestamp("us", tz="UTC")
    if name in METRICS:
        return pa.float64() if name.endswith(_FLOAT_SUFFIXES) else pa.int64()
    if name in _INT_COLUMNS:
        return pa.int64()
    return pa.string()


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 text (as rows carry it) to an aware UTC datetime; naive times are taken as UTC."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str) and value:
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _cell(name: str, value: Any, kind: pa.DataType) -> Any:
    if value is None or value == "":
        return None
    if pa.types.is_string(kind):
        if isinstance(value, dict | list):
            return json.dumps(value, separators=(",", ":"), sort_keys=True)
        return str(value)
    if pa.types.is_int64(kind):
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    if pa.types.is_float64(kind):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    return value


def rows_to_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Rows (dicts as in table/results.jsonl) to an Arrow table with the stable schema above (pure).
    Rows without a run_id are refused: dedupe is by run_id."""
    names: list[str] = [KEY_COLUMN, TIME_COLUMN]
    seen = set(names)
    for row in rows:
        if not row.get(KEY_COLUMN):
            raise ValueError(f"history: a row without {KEY_COLUMN} (sample {row.get('sample')!r})")
        for key in row:
            if key not in seen:
                seen.add(key)
                names.append(key)
    arrays = []
    fields = []
    for name in names:
        kind = column_type(name)
        if name == TIME_COLUMN:
            values = [parse_time(r.get("written_at")) or parse_time(r.get(TIME_COLUMN)) for r in rows]
        else:
            values = [_cell(name, r.get(name), kind) for r in rows]
        arrays.append(pa.array(values, type=kind))
        fields.append(pa.field(name, kind))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def merge(old: pa.Table | None, new: pa.Table) -> pa.Table:
    """Union of columns, one row per run_id (the later table's row wins), sorted by time then run_id."""
    table = new if old is None else pa.concat_tables([old, new], promote_options="permissive")
    ids = table.column(KEY_COLUMN).to_pylist()
    last: dict[str, int] = {}
    for i, run_id in enumerate(ids):
        last[run_id] = i
    keep = sorted(last.values())
    if len(keep) != len(ids):
        table = table.take(pa.array(keep, type=pa.int64()))
    return table.sort_by([(TIME_COLUMN, "ascending"), (KEY_COLUMN, "ascending")])


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def append_rows(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> int:
    """Add rows to the history file (created if absent); returns the number of runs it now holds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        return read_count(target)
    new = rows_to_table(rows)
    with _locked(target):
        old = pq.read_table(target) if target.exists() else None
        table = merge(old, new)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                pq.write_table(table, fh, compression=_COMPRESSION)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
    return table.num_rows


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_count(path: str | Path) -> int:
    p = Path(path)
    return pq.ParquetFile(p).metadata.num_rows if p.exists() else 0


def read_history(
    path: str | Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    columns: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Rows with since <= written_ts < until, as dicts (qc_failed_rules decoded back to a list).
    `columns` limits what is read (the report's trends need a dozen of ~230); unknown names are ignored."""
    p = Path(path)
    if not p.exists():
        return []
    schema = pq.read_schema(p)
    wanted = None
    if columns is not None:
        wanted = [c for c in dict.fromkeys([KEY_COLUMN, TIME_COLUMN, *columns]) if c in schema.names]
    filters = []
    if since is not None:
        filters.append((TIME_COLUMN, ">=", since.astimezone(UTC)))
    if until is not None:
        filters.append((TIME_COLUMN, "<", until.astimezone(UTC)))
    table = pq.read_table(p, columns=wanted, filters=filters or None)
    rows = table.to_pylist()
    for row in rows:
        rules = row.get("qc_failed_rules")
        if isinstance(rules, str):
            with suppress(ValueError):
                row["qc_failed_rules"] = json.loads(rules)
    return rows
