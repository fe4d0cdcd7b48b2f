"""The batch report in a real browser: rows + a Parquet history -> one HTML page, loaded offline by headless
Chromium; the DOM after scripts must hold the runs (sorted by the #sort= address), the failed/stuck/lost
runs with log links, the plots and the named outliers, and no script may have failed.

Skipped when no Chromium can be found or installed (tests/support/browser.py). The screenshot is saved
in the test's tmp dir, and copied to $ALIGNBATCH_TEST_ARTIFACTS when that is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from controller.qc import batch_report as br
from controller.qc import history
from core.qc import shipped_thresholds_path
from core.qc_file import load_thresholds
from tests.support.browser import ensure_chromium, load_page

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
END = datetime(2026, 12, 1, 12, tzinfo=UTC)
START = END - timedelta(hours=24)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = ensure_chromium()
    if path is None:
        pytest.skip("no Chromium (apt-get install chromium failed or is not allowed here)")
    return path


def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


def make_row(i: int, when: datetime, name: str, key: str, scale: float = 1.0) -> dict:
    """A row as the finish stage writes it: provenance, the report (coverage scaled), the verdict."""
    report = golden(name)
    for k in ("WgsCoverageMean", "CapCoverageMean"):
        if k in report:
            report[k] = round(report[k] * scale, 6)
    row = {
        "run_id": f"run-{i:04d}",
        "sample": Path(key).stem,
        "inbox_key": key,
        "input_size": report["InputFileSize"],
        "written_at": when.isoformat(),
        **report,
    }
    row.update(load_thresholds(shipped_thresholds_path()).verdict(report, key).row_columns())
    return row


def period_rows() -> list[dict]:
    rows = [
        make_row(
            i, START + timedelta(minutes=50 * i + 5), "e_large__t", f"wgs/S{i:02d}.bam", 1 + (i % 5 - 2) / 100
        )
        for i in range(20)
    ]
    rows.append(make_row(100, START + timedelta(hours=3, minutes=10), "a_wgs__C", "wgs/SHALLOW.bam"))
    rows.append(make_row(101, START + timedelta(hours=6, minutes=20), "g_empty__C", "wgs/EMPTY.bam"))
    rows.append(make_row(102, START + timedelta(hours=7), "d_capture__t", "exome/CAP1.bam"))
    return rows


def history_rows() -> list[dict]:
    rows = [
        make_row(
            1000 + i,
            START - timedelta(hours=11 * i + 1),
            "e_large__t",
            f"wgs/H{i:02d}.bam",
            1 + (i % 7 - 3) / 100,
        )
        for i in range(60)
    ]
    rows += [
        make_row(2000 + i, START - timedelta(days=i + 1), "d_capture__t", f"exome/HX{i}.bam")
        for i in range(6)
    ]
    # Older than the trailing window: must not count in the baseline.
    rows.append(make_row(3000, START - timedelta(days=45), "a_wgs__C", "wgs/OLD.bam"))
    return rows


ISSUES = (
    br.RunIssue(
        "run-9001",
        "TRUNC",
        "wgs/TRUNC.bam",
        br.IssueKind.FAILED,
        "alignstats exit 65: h_truncated.bam: BGZF EOF marker absent, file truncated",
        START + timedelta(hours=2),
        "alignstats",
        "https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:log-groups/x",
    ),
    br.RunIssue(
        "run-9002",
        "SLOW",
        "wgs/SLOW.bam",
        br.IssueKind.STUCK,
        "RUNNABLE 3 h: no compute capacity",
        START + timedelta(hours=9),
        "index",
    ),
    br.RunIssue(
        "run-9003",
        "GONE",
        "wgs/GONE.bam",
        br.IssueKind.LOST,
        "job unknown to Batch after 7 days",
        None,
        "summary",
    ),
)


class Dom(HTMLParser):
    """The few things the test reads from the DOM, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tables: dict[str, list[dict[str, str]]] = {}
        self.table: str | None = None
        self.sort_cells: list[list[str]] = []
        self.attrs_by_id: dict[str, dict[str, str]] = {}
        self.sections: list[dict[str, str]] = []
        self.svgs: list[str] = []
        self.outliers: list[str] = []
        self.links: list[str] = []
        self.body: dict[str, str] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: v or "" for k, v in attrs_list}
        if "id" in attrs:
            self.attrs_by_id[attrs["id"]] = attrs
        if tag == "body":
            self.body = attrs
        if tag == "table":
            self.table = attrs.get("id")
            self.tables.setdefault(self.table or "", [])
        if tag == "tr" and "data-run-id" in attrs and self.table:
            self.tables[self.table].append(attrs)
            if self.table == "runs":
                self.sort_cells.append([])
        if tag == "td" and self.table == "runs" and self.sort_cells and "data-sort" in attrs:
            self.sort_cells[-1].append(attrs["data-sort"])
        if tag == "section" and "data-metric" in attrs:
            self.sections.append(attrs)
        if tag == "svg" and "data-plot" in attrs:
            self.svgs.append(attrs["data-plot"])
        if tag == "span" and "outlier" in attrs.get("class", ""):
            self.outliers.append(attrs.get("data-sample", ""))
        if tag == "a" and "log" in attrs.get("class", ""):
            self.links.append(attrs.get("href", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.table = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("report")
    hist_file = base / "history.parquet"
    history.append_rows(hist_file, history_rows())
    trailing = history.read_history(
        hist_file, since=START - br.TRAILING, until=START, columns=br.HISTORY_COLUMNS
    )
    html = br.render_batch_report(
        period_rows(),
        trailing,
        ISSUES,
        period_start=START,
        period_end=END,
        now=END,
        title="alignbatch QC test",
    )
    out = base / "report.html"
    br.write_report(out, html)
    return out


def test_page_is_self_contained(page: Path) -> None:
    html = page.read_text()
    # No resource from anywhere: no src=, no <link>, no CSS url() other than the SVGs' own #fragments.
    assert not re.search(r"""\ssrc\s*=""", html)
    assert "<link" not in html
    assert not [u for u in re.findall(r"url\(([^)]*)\)", html) if not u.startswith("#")]
    assert not re.search(r"@import", html)
    # The only absolute URLs are the failed run's log link and the SVG namespaces.
    urls = set(re.findall(r"""https?://[^\s"'<>)]+""", html))
    assert {u for u in urls if "w3.org" not in u} == {ISSUES[0].log_url}


def test_page_in_chromium(chromium: str, page: Path) -> None:
    shot = page.with_suffix(".png")
    run = load_page(chromium, page.as_uri() + "#sort=runs.MappedReadsPct:asc", screenshot=shot)
    dom = Dom()
    dom.feed(run.dom)

    # Scripts ran, and none failed: the onerror hook wrote nothing, the console is silent.
    assert dom.body.get("data-ready") == "1", run.stderr[-2000:]
    assert dom.attrs_by_id["js-errors"]["data-count"] == "0"
    assert not run.console, run.console

    # Every run of the period, sorted by the address's #sort=runs.MappedReadsPct:asc (EMPTY first: 0 %).
    runs = dom.tables["runs"]
    assert len(runs) == 23
    assert runs[0]["data-run-id"] == "run-0101"
    assert runs[0]["data-verdict"] == "fail"
    mapped = [float(cells[4]) for cells in dom.sort_cells]  # sample, finished, assay, verdict, Mapped
    assert mapped == sorted(mapped)
    verdicts = {r["data-run-id"]: r["data-verdict"] for r in runs}
    assert verdicts["run-0100"] == "fail"  # SHALLOW: 18X
    assert verdicts["run-0102"] == "pass"  # CAP1 as exome
    assert verdicts["run-0000"] == "pass"
    text = " ".join(dom.text)
    assert "WgsCoverageMean 18.3934 < 20 (fail)" in text
    assert dom.attrs_by_id["count-fail"] and "fail" in text

    # Failed, stuck, lost runs with reasons and the log link.
    assert [r["data-kind"] for r in dom.tables["issues"]] == ["failed", "lost", "stuck"]
    assert "RUNNABLE 3 h: no compute capacity" in text
    assert dom.links == [ISSUES[0].log_url]

    # Distributions per assay and metric, each an inline SVG; outliers named.
    metrics = {(s["data-assay"], s["data-metric"]) for s in dom.sections}
    assert ("wgs", "WgsCoverageMean") in metrics
    assert ("exome", "CapCoverageMean") in metrics
    assert ("wgs", "CapCoverageMean") in metrics  # e_large was run with -t too
    assert len(dom.svgs) == len(dom.sections) + 1  # + throughput
    assert "throughput" in dom.svgs
    wgs_cov = next(
        s for s in dom.sections if (s["data-assay"], s["data-metric"]) == ("wgs", "WgsCoverageMean")
    )
    assert wgs_cov["data-outliers"] == "2"  # SHALLOW and EMPTY, not the +-2 % healthy ones
    assert {"SHALLOW", "EMPTY"} <= set(dom.outliers)
    assert not {f"S{i:02d}" for i in range(20)} & set(dom.outliers)
    assert "OLD" not in text  # outside the trailing window
    assert "30-day median" in text

    # Throughput: one row per hour of the period, 23 runs in all.
    assert png_size(shot) == (1400, 2000)
    artifacts = os.environ.get("ALIGNBATCH_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "batch_report.png")
        shutil.copy(page, Path(artifacts) / "batch_report.html")


def test_throughput_table_counts_every_run(page: Path) -> None:
    html = page.read_text()
    body = html[html.index('id="throughput-table"') :]
    cells = re.findall(r"<tr><td>([^<]+)</td>((?:<td class=\"num\">\d+</td>){4})</tr>", body)
    assert len(cells) == 24
    total = sum(sum(int(n) for n in re.findall(r">(\d+)<", c[1])) for c in cells)
    assert total == 23
