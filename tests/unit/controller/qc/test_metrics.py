"""controller.qc.metrics and the QC alert/panel in controller/qc/monitoring/: promtool checks and unit
tests the rule, the panel's query parses, and both use only the series QcMetrics exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from controller.qc.metrics import QcMetrics
from core.qc import Level, Verdict

MONITORING = Path(__file__).resolve().parents[4] / "controller" / "qc" / "monitoring"
METRIC_NAME = re.compile(r"\balignbatch_[a-z0-9_]+\b")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    return path


def test_counter_precreated_and_counted() -> None:
    registry = CollectorRegistry()
    qc = QcMetrics(registry, assays=["wgs", "exome"])
    qc.observe(Verdict(Level.FAIL, (), "wgs", "1", "0" * 64))
    text = generate_latest(registry).decode()
    assert 'alignbatch_qc_verdicts_total{assay="wgs",verdict="fail"} 1.0' in text
    assert 'alignbatch_qc_verdicts_total{assay="exome",verdict="warn"} 0.0' in text


def test_rule_and_panel_use_only_the_exported_series() -> None:
    registry = CollectorRegistry()
    QcMetrics(registry, assays=["wgs"])
    exported = set(METRIC_NAME.findall(generate_latest(registry).decode()))
    panel = json.loads((MONITORING / "qc.panel.json").read_text())
    used = set(METRIC_NAME.findall((MONITORING / "qc.rules.yml").read_text()))
    used |= {n for t in panel["targets"] for n in METRIC_NAME.findall(t["expr"])}
    assert used == {"alignbatch_qc_verdicts_total"} <= exported


def test_promtool_checks_and_unit_tests_the_rule(tmp_path: Path) -> None:
    tool = promtool()
    for args in (["check", "rules", "qc.rules.yml"], ["test", "rules", "qc.rules.test.yml"]):
        proc = subprocess.run([tool, *args], cwd=MONITORING, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    panel = json.loads((MONITORING / "qc.panel.json").read_text())
    exprs = [t["expr"].replace("$job", ".*") for t in panel["targets"]]
    rules = {
        "groups": [
            {"name": "panel", "rules": [{"record": f"panel:q{i}", "expr": e} for i, e in enumerate(exprs)]}
        ]
    }
    path = tmp_path / "panel.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
