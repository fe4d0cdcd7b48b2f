"""controller.qc.metrics: the verdict counter, created at zero for every assay, and the QC alert and
panel in deploy/ reading only that series (tests/deploy/test_monitoring.py runs promtool on them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry, generate_latest

from controller.metrics import Metrics
from controller.qc.metrics import QcMetrics
from core.qc import Level, Verdict

DEPLOY = Path(__file__).resolve().parents[4] / "deploy"
METRIC_NAME = re.compile(r"\balignbatch_[a-z0-9_]+\b")


def test_counter_precreated_and_counted() -> None:
    registry = CollectorRegistry()
    qc = QcMetrics(registry, assays=["wgs", "exome"])
    qc.observe(Verdict(Level.FAIL, (), "wgs", "1", "0" * 64))
    text = generate_latest(registry).decode()
    assert 'alignbatch_qc_verdicts_total{assay="wgs",verdict="fail"} 1.0' in text
    assert 'alignbatch_qc_verdicts_total{assay="exome",verdict="warn"} 0.0' in text


def test_the_controller_metrics_carry_the_counter_and_declare_assays_later() -> None:
    metrics = Metrics()
    metrics.qc.declare(["panel"])
    metrics.qc.declare(["panel"])  # idempotent
    text = generate_latest(metrics.registry).decode()
    assert 'alignbatch_qc_verdicts_total{assay="panel",verdict="pass"} 0.0' in text


def test_the_deployed_alert_and_panel_read_the_verdict_counter() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alignbatch.rules.yml").read_text())
    [alert] = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "AlignbatchQcFailRate"]
    assert set(METRIC_NAME.findall(alert["expr"])) == {"alignbatch_qc_verdicts_total"}
    tests = yaml.safe_load((DEPLOY / "prometheus" / "alignbatch.rules.test.yml").read_text())["tests"]
    assert any(c["alertname"] == "AlignbatchQcFailRate" for t in tests for c in t.get("alert_rule_test", []))
    dash = json.loads((DEPLOY / "grafana" / "alignbatch.json").read_text())
    [panel] = [p for p in dash["panels"] if "QC verdicts" in p["title"]]
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    assert {n for t in panel["targets"] for n in METRIC_NAME.findall(t["expr"])} == {
        "alignbatch_qc_verdicts_total"
    }
