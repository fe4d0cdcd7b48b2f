"""The QC verdict counter the controller exports once the finish stage computes verdicts.

    qc = QcMetrics(metrics.registry)            # controller.metrics.Metrics does this: `metrics.qc`
    qc.declare(a.name for a in thresholds.assays)  # once the thresholds are loaded
    qc.observe(verdict)                            # per finished row (controller.qc.publish)

`alignbatch_qc_verdicts_total{assay, verdict}`: labels are bounded (assays come from the thresholds file,
verdicts are pass/warn/fail), never a sample or run id, as controller/metrics.py requires. Every
assay x verdict series is created at zero up front so the alert's ratio and the dashboard show 0 rather
than no data on a fresh controller. The alert (AlignbatchQcFailRate) and the panel that read it are in
deploy/prometheus/alignbatch.rules.yml and deploy/grafana/alignbatch.json.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter

from core.qc import Level, Verdict

METRIC = "alignbatch_qc_verdicts"


class QcMetrics:
    def __init__(self, registry: CollectorRegistry, assays: Iterable[str] = ()) -> None:
        self.verdicts = Counter(
            METRIC, "QC verdicts of finished samples by assay", ["assay", "verdict"], registry=registry
        )
        self.declare(assays)

    def declare(self, assays: Iterable[str]) -> None:
        """Create every assay x verdict series at zero (idempotent)."""
        for assay in assays:
            for level in Level:
                self.verdicts.labels(assay=assay, verdict=str(level))

    def observe(self, verdict: Verdict) -> None:
        self.verdicts.labels(assay=verdict.assay, verdict=str(verdict.level)).inc()
