"""The MultiQC plugin with the real `multiqc` (1.35 here): a RESULTS directory built from golden reports,
rows with verdicts beside some of them, then `multiqc RESULTS -o OUT` and the values in multiqc_data/.

Skipped when multiqc is not installed or the plugin's entry points are not registered (setup.cfg's
`multiqc.modules.v1` / `multiqc.hooks.v1`; docs/qc.md).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from core.qc import shipped_thresholds_path
from core.qc_file import load_thresholds

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"

pytestmark = pytest.mark.skipif(
    not metadata.entry_points(group="multiqc.modules.v1", name="alignbatch")
    or shutil.which("multiqc", path=str(Path(sys.executable).parent)) is None,
    reason="multiqc or the alignbatch plugin entry point is not installed (pip install -e '.[multiqc]')",
)

# inbox key -> golden report
SAMPLES = {
    "wgs/a_wgs.bam": "a_wgs__C",  # WGS, row in rows/ (fail: shallow)
    "exome/d_capture.bam": "d_capture__t",  # capture, row only in table/results.jsonl (pass)
    "f_se.cram": "f_se__C",  # single-end, no row at all
    "wgs/batch2/e_large.bam": "e_large__t",  # an older row and a newer one: the newer verdict wins
}


def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


def make_results(root: Path) -> None:
    thresholds = load_thresholds(shipped_thresholds_path())
    for key, name in SAMPLES.items():
        path = root / "reports" / f"{key}.alignstats.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(GOLDEN / f"{name}.json", path)
    (root / "rows").mkdir()
    (root / "table").mkdir()

    def row(key: str, run_id: str, written_at: str, **extra: object) -> dict:
        report = golden(SAMPLES[key])
        out = {"inbox_key": key, "run_id": run_id, "sample": Path(key).name, "written_at": written_at}
        out.update(report)
        out.update(thresholds.verdict(report, key).row_columns())
        out.update(extra)
        return out

    a = row("wgs/a_wgs.bam", "r-a", "2026-12-01T10:00:00+00:00", engine_version="0.1.0")
    (root / "rows" / "r-a.json").write_text(json.dumps(a))
    e_old = row("wgs/batch2/e_large.bam", "r-e1", "2026-11-30T10:00:00+00:00", qc_verdict="warn")
    e_new = row("wgs/batch2/e_large.bam", "r-e2", "2026-12-01T11:00:00+00:00")
    (root / "rows" / "r-e2.json").write_text(json.dumps(e_new))
    (root / "rows" / "broken.json").write_text('{"half": ')  # a torn object must not hide the others
    d = row("exome/d_capture.bam", "r-d", "2026-12-01T09:00:00+00:00")
    (root / "table" / "results.jsonl").write_text(json.dumps(d) + "\n" + json.dumps(e_old) + "\n")


def read_tsv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as fh:
        return {r["Sample"]: r for r in csv.DictReader(fh, delimiter="\t")}


@pytest.fixture(scope="module")
def multiqc_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("mqc")
    results = base / "RESULTS"
    make_results(results)
    out = base / "out"
    exe = Path(sys.executable).parent / "multiqc"
    proc = subprocess.run(
        [str(exe), str(results), "-o", str(out), "--no-ansi", "--no-version-check", "-f"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Found 4 alignstats reports" in proc.stdout + proc.stderr
    return out


def test_general_stats_every_sample_with_values_and_verdicts(multiqc_out: Path) -> None:
    stats = read_tsv(multiqc_out / "multiqc_data" / "multiqc_general_stats.txt")
    assert set(stats) == {"a_wgs", "d_capture", "f_se", "e_large"}
    for key, name in SAMPLES.items():
        report = golden(name)
        s = stats[Path(key).name.rsplit(".", 1)[0]]
        assert float(s["alignbatch-MappedReadsPct"]) == pytest.approx(report["MappedReadsPct"])
        assert float(s["alignbatch-DuplicateReadsPct"]) == pytest.approx(report["DuplicateReadsPct"])
        assert float(s["alignbatch-WgsCoverageMean"]) == pytest.approx(report["WgsCoverageMean"])
        assert float(s["alignbatch-WgsCoverageBases30Pct"]) == pytest.approx(report["WgsCoverageBases30Pct"])
        assert float(s["alignbatch-InsertSizeMedian"]) == report["InsertSizeMedian"]
    assert float(stats["d_capture"]["alignbatch-CapCoverageMean"]) == pytest.approx(82.149856)
    assert stats["a_wgs"]["alignbatch-CapCoverageMean"] == ""
    assert stats["a_wgs"]["alignbatch-qc_verdict"] == "fail"
    assert "WgsCoverageMean 18.393436 < 20" in stats["a_wgs"]["alignbatch-qc_failed_rules"]
    assert stats["d_capture"]["alignbatch-qc_verdict"] == "pass"  # from table/results.jsonl
    assert stats["e_large"]["alignbatch-qc_verdict"] == "pass"  # the newer row wins over the table's
    assert stats["f_se"]["alignbatch-qc_verdict"] == ""  # no row: no verdict, still listed


def test_module_data_and_plots(multiqc_out: Path) -> None:
    data = multiqc_out / "multiqc_data"
    raw = read_tsv(data / "multiqc_alignbatch.txt")
    assert set(raw) == {"a_wgs", "d_capture", "f_se", "e_large"}
    assert int(raw["a_wgs"]["YieldReads"]) == golden("a_wgs__C")["YieldReads"]

    cumcov = read_tsv(data / "multiqc_alignbatch_cumcov_wgs.txt")
    assert float(cumcov["a_wgs"]["20"]) == pytest.approx(golden("a_wgs__C")["WgsCoverageBases20Pct"])
    assert list(cumcov["a_wgs"])[1:] == [
        "1",
        "10",
        "15",
        "20",
        "30",
        "40",
        "50",
        "60",
        "70",
        "100",
        "500",
        "1000",
    ]
    cap = read_tsv(data / "multiqc_alignbatch_cumcov_cap.txt")
    assert set(cap) == {"d_capture", "e_large"}  # only reports with a capture section

    reads = read_tsv(data / "multiqc_alignbatch_reads.txt")
    d = golden("d_capture__t")
    parts = reads["d_capture"]
    assert sum(float(parts[k]) for k in ("mapped_not_duplicate", "duplicate", "unmapped")) == d["YieldReads"]
    bases = read_tsv(data / "multiqc_alignbatch_bases.txt")
    assert (
        sum(float(v) for k, v in bases["a_wgs"].items() if k != "Sample") == golden("a_wgs__C")["YieldBases"]
    )

    r1r2 = read_tsv(data / "multiqc_alignbatch_r1_r2.txt")
    assert "f_se" not in r1r2  # single-end: nothing to compare
    a = golden("a_wgs__C")
    assert float(r1r2["a_wgs"]["R2Q30BasesPct"]) == pytest.approx(a["R2Q30BasesPct"])
    assert float(r1r2["a_wgs"]["R1Q30BasesPct"]) == pytest.approx(a["R1Q30BasesPct"])

    html = (multiqc_out / "multiqc_report.html").read_text()
    for anchor in (
        "alignbatch-cumcov",
        "alignbatch-reads",
        "alignbatch-pairs",
        "alignbatch-bases",
        "alignbatch-r1-r2",
    ):
        assert f'id="{anchor}"' in html, anchor
