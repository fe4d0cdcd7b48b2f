"""deploy/prometheus and deploy/grafana: promtool checks and rule unit tests, the dashboard's PromQL
parses, and every metric name they use is one a running controller really exports (COMMON §5)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.deploy import DEPLOY, ROOT, find_tool, require_tool
from tests.support.moto import free_port

PROM_DIR = DEPLOY / "prometheus"
RULES = PROM_DIR / "alignbatch.rules.yml"
DASHBOARD = DEPLOY / "grafana" / "alignbatch.json"
CW_AGENT = DEPLOY / "cloudwatch" / "amazon-cloudwatch-agent.json"
METRIC_NAME = re.compile(r"\balignbatch_[a-z0-9_]+\b")
# Grafana's variables, replaced by something PromQL accepts so promtool can parse the queries.
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$job": ".*"}


def _promtool() -> str:
    return require_tool("promtool", "Debian package prometheus")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_promtool_check_rules_and_config() -> None:
    promtool = _promtool()
    proc = _run([promtool, "check", "rules", RULES.name], PROM_DIR)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _run([promtool, "check", "config", "prometheus.yml"], PROM_DIR)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_rule_unit_tests() -> None:
    proc = _run([_promtool(), "test", "rules", "alignbatch.rules.test.yml"], PROM_DIR)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr


def test_every_alert_is_unit_tested() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    tested = {
        case["alertname"]
        for test in yaml.safe_load((PROM_DIR / "alignbatch.rules.test.yml").read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    }
    assert alerts == tested
    assert {
        "AlignbatchInboxBackingUp",
        "AlignbatchDeadLetterQueueNotEmpty",
        "AlignbatchJobFailureRate",
        "AlignbatchLoopStale",
        "AlignbatchRunnableTooLong",
    } <= alerts


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())

    def panels(items: list[dict]) -> Iterator[dict]:
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    queries = [t["expr"] for p in panels(dash["panels"]) for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        if var.get("definition"):
            queries.append(var["definition"])
    return queries


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    exprs = []
    for query in dashboard_queries():
        if query.startswith("label_values("):  # a Grafana function, not PromQL
            continue
        for var, value in GRAFANA_VARS.items():
            query = query.replace(var, value)
        exprs.append(query)
    assert len(exprs) >= 15
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = _run([_promtool(), "check", "rules", str(path)], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def used_metric_names() -> dict[str, set[str]]:
    rules_text = RULES.read_text()
    return {
        "alert rules": set(METRIC_NAME.findall(rules_text)),
        "dashboard": {n for q in dashboard_queries() for n in METRIC_NAME.findall(q)},
        "cloudwatch agent": {n for n in METRIC_NAME.findall(CW_AGENT.read_text())},
    }


def exported_names(exposition: str) -> set[str]:
    """Every series name a scraper can see: sample names, plus the names families without samples yet
    (labelled metrics before their first event) will have: counters _total, histograms _bucket/_sum/_count."""
    from prometheus_client.parser import text_string_to_metric_families

    names: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    for family in text_string_to_metric_families(exposition):
        names.update(sample.name for sample in family.samples)
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


@pytest.fixture()
def controller_metrics(tmp_path: Path) -> Iterator[str]:
    controller = find_tool("alignbatch-controller")
    assert controller, "alignbatch-controller console script missing (pip install -e .)"
    port = free_port()
    proc = subprocess.Popen(
        [controller, "run", "--local", str(tmp_path / "local"), "--metrics-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    body = resp.read().decode()
                if "alignbatch_build_info" in body:
                    yield body
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            if proc.poll() is not None:
                pytest.fail(f"controller exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("controller served no /metrics within 60 s")
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_dashboard_and_alerts_use_only_exported_metrics(controller_metrics: str) -> None:
    exported = exported_names(controller_metrics)
    used = used_metric_names()
    assert used["alert rules"] and used["dashboard"]
    for where, names in used.items():
        unknown = sorted(names - exported)
        assert not unknown, f"{where} use metrics the controller does not export: {unknown}"
    # and the dashboard covers what the issue asks for
    covered = used["dashboard"]
    for name in (
        "alignbatch_runs_total",
        "alignbatch_input_bytes_total",
        "alignbatch_job_completions_total",
        "alignbatch_end_to_end_latency_seconds_bucket",
        "alignbatch_queue_messages",
        "alignbatch_oldest_runnable_age_seconds",
        "alignbatch_throttled_calls_total",
        # cost per sample and Spot fallback (#18)
        "alignbatch_cost_usd_total",
        "alignbatch_costed_runs_total",
        "alignbatch_reclaims_total",
    ):
        assert name in covered, name
    titles = {p.get("title") for p in json.loads(DASHBOARD.read_text())["panels"]}
    assert "Cost per sample" in titles
