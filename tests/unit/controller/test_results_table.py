"""The results table (rows → CSV / JSON Lines) and the summary tool that writes each row."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from controller.results_table import columns, render_csv, render_jsonl
from worker import summary


def test_results_table_rendering() -> None:
    rows = [
        {"sample": "a", "run_id": "r1", "TotalRecords": 5, "MappedReadsPct": 12.5},
        {"sample": 'b, "quoted"', "run_id": "r2", "TotalRecords": 7, "CapTargets": 3},
    ]
    cols = columns(rows)
    assert cols[0] == "sample" and cols[-3:] == ["TotalRecords", "MappedReadsPct", "CapTargets"]
    parsed = list(csv.DictReader(io.StringIO(render_csv(rows).decode())))
    assert parsed[0]["MappedReadsPct"] == "12.500000" and parsed[1]["MappedReadsPct"] == ""
    assert parsed[1]["sample"] == 'b, "quoted"'
    assert [json.loads(x) for x in render_jsonl(rows).decode().splitlines()] == rows


def test_summary_tool_writes_row_and_rejects_bad_reports(tmp_path: Path, data_dir: Path) -> None:
    report = tmp_path / "r.json"
    report.write_text((data_dir / "golden" / "i_edge_bam__C.json").read_text())
    row = tmp_path / "rows" / "r1.json"
    meta = ["--meta", "run_id=r1", "--meta", "input_size=12"]
    rc = summary.main(["--report", str(report), "--output", str(row), *meta])
    assert rc == 0
    data = json.loads(row.read_text())
    assert data["run_id"] == "r1" and data["input_size"] == 12 and data["engine"]
    assert data["TotalRecords"] == json.loads(report.read_text())["TotalRecords"]
    report.write_text('{"InputFileName": "x"')
    assert summary.main(["--report", str(report), "--output", str(row)]) == 65
    report.write_text(json.dumps({"InputFileName": "x", "InputFileSize": 1}))
    assert summary.main(["--report", str(report), "--output", str(row)]) == 65
    assert summary.main(["--report", str(tmp_path / "missing.json"), "--output", str(row)]) == 66
    assert summary.main(["--report", str(report), "--output", str(row), "--meta", "novalue"]) == 64


def test_csv_text_cells_never_become_formulas_and_jsonl_stays_exact() -> None:
    hostile = "=cmd|' -C calc'!A0"
    rows = [
        {
            "sample": hostile,
            "inbox_key": f"{hostile}.bam",
            "input_uri": "+SUM(1,1)",
            "report_uri": "@SUM(A1)",
            "target_bed": "\t=1+1",
            "alignstats_args": "-C",
            "input_size": -3,
            "MeanInsert": -1.5,
            "Signed": "-1.5",
            "Dict": {"=a": 1},
            "Plain": "a=b",
        }
    ]
    [parsed] = list(csv.DictReader(io.StringIO(render_csv(rows).decode(), newline="")))
    assert parsed["sample"] == "'" + hostile and parsed["inbox_key"] == f"'{hostile}.bam"
    assert parsed["input_uri"] == "'+SUM(1,1)" and parsed["report_uri"] == "'@SUM(A1)"
    assert parsed["target_bed"] == "'\t=1+1"
    assert parsed["alignstats_args"] == "'-C"
    # Numbers stay numbers, whether typed or a number's text.
    assert parsed["input_size"] == "-3" and parsed["MeanInsert"] == "-1.500000" and parsed["Signed"] == "-1.5"
    assert parsed["Dict"] == '{"=a":1}' and parsed["Plain"] == "a=b"
    for cell in parsed.values():
        assert not cell.startswith(("=", "+", "@", "\t", "\r")) and not cell.startswith("-C")
    assert [json.loads(x) for x in render_jsonl(rows).decode().splitlines()] == rows


def test_a_carriage_return_in_a_cell_neither_splits_the_row_nor_starts_a_formula() -> None:
    rows = [{"sample": "\r=1+1", "run_id": "r1"}, {"sample": "b", "run_id": "r2"}]
    parsed = list(csv.DictReader(io.StringIO(render_csv(rows).decode(), newline="")))
    assert [(r["sample"], r["run_id"]) for r in parsed] == [("'\r=1+1", "r1"), ("b", "r2")]
