"""`alignbatch-summary --report REPORT --output ROW [--meta KEY=VALUE]...`

The last step of a run: checks that the alignstats report is a complete, well-formed JSON object and
writes that sample's row — every report metric plus provenance (input URI, ETag, size, engine and
version, job ids, pipeline version) — as its own object. One row object per run, so concurrent jobs
never rewrite a shared object; the controller merges rows into the combined table.

REPORT and ROW may be s3:// URIs or paths (in a Batch job the worker wrapper usually stages REPORT and
uploads ROW, so this tool sees local paths). Exit codes: 0 ok, 64 usage, 65 the report is not a valid
alignstats report, 66 the report is missing, other worker codes for I/O failures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from datetime import UTC, datetime
from typing import Any

from core import rows
from core.errors import BadInput, UsageError, WorkerError
from core.exitcodes import ExitCode
from core.version import __version__

# Keys every alignstats v0.11 report starts with (ALIGNSTATS.md §3: InputFileName, InputFileSize, then
# the five filter counters, always present).
REQUIRED_KEYS = (
    "InputFileName",
    "InputFileSize",
    "TotalRecords",
    "UnfilteredRecords",
    "UnfilteredRecordsPct",
    "FilteredRecords",
    "FilteredRecordsPct",
)


def validate_report(data: bytes, where: str) -> dict[str, Any]:
    """Parse and check a report (pure). Raises BadInput with a one-line reason."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(
            f"{where}: not valid JSON ({exc}); the alignstats step did not finish cleanly"
        ) from None
    if not isinstance(doc, dict):
        raise BadInput(f"{where}: report is not a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in doc]
    if missing:
        raise BadInput(f"{where}: not an alignstats report (missing {', '.join(missing)})")
    for key, value in doc.items():
        if key == "InputFileName":
            if not isinstance(value, str):
                raise BadInput(f"{where}: InputFileName is not a string")
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadInput(f"{where}: metric {key} is not a number ({value!r})")
        if isinstance(value, float) and not math.isfinite(value):
            raise BadInput(f"{where}: metric {key} is not finite ({value!r})")
    return doc


def detect_engine() -> tuple[str, str]:
    """Which alignstats the worker in this image runs (same resolution as the worker itself: an explicit
    ALIGNBATCH_ALIGNSTATS_BIN, else `alignstats` on PATH, else the built-in engine) and its version."""
    try:
        from worker.engines import resolve_engine

        engine = resolve_engine("alignstats")
        return engine.name, engine.version or ""
    except Exception:  # provenance is best effort; never fail a run over it
        if os.environ.get("ALIGNBATCH_ALIGNSTATS_BIN") or shutil.which("alignstats"):
            return "alignstats", ""
        return "alignbatch-alignstats", __version__


def build_row(report: dict[str, Any], meta: dict[str, str], *, now: datetime | None = None) -> dict[str, Any]:
    """Provenance first, then the report's metrics in report order (pure)."""
    engine, version = detect_engine()
    row: dict[str, Any] = {
        "engine": meta.pop("engine", engine),
        "engine_version": meta.pop("engine_version", version),
    }
    # The planner's fields, typed as the row schema (core.rows) says.
    row.update({key: rows.typed(key, value) for key, value in meta.items()})
    job_id = os.environ.get("AWS_BATCH_JOB_ID")
    if job_id:
        row.setdefault("job_id_summary", job_id)
    row["written_at"] = (now or datetime.now(UTC)).isoformat()
    for key, value in report.items():
        if key not in row:
            row[key] = value
    return row


def parse_meta(items: list[str]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--meta {item!r}: expected KEY=VALUE")
        meta[key] = value
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alignbatch-summary", description=__doc__.splitlines()[0])
    parser.add_argument("--report", required=True, help="alignstats report JSON (s3:// URI or path)")
    parser.add_argument("--output", required=True, help="where to write the row JSON (s3:// URI or path)")
    parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="provenance field")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and int(ExitCode.USAGE)
    try:
        from core.locations import LocationError, parse_location
        from core.objectstore import store_for

        try:
            report_loc = parse_location(args.report)
            output_loc = parse_location(args.output)
        except LocationError as exc:
            raise UsageError(str(exc)) from None
        meta = parse_meta(args.meta)
        data = store_for(report_loc).read_bytes(report_loc)
        report = validate_report(data, str(report_loc))
        row = build_row(report, meta)
        body = (json.dumps(row, ensure_ascii=False, indent=None) + "\n").encode("utf-8")
        store_for(output_loc).write_bytes(output_loc, body, content_type="application/json")
    except WorkerError as exc:
        print(f"alignbatch-summary: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    print(json.dumps({"event": "summary.written", "output": str(output_loc), "sample": row.get("sample")}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
