"""What a loaded config is checked against (required AWS settings, likely mistakes), and the local
profile `run --local DIR` builds."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from controller.config.model import ConfigError, ControllerConfig, StateConfig
from core.qc import Thresholds
from core.qc_file import ThresholdsError, load_thresholds


def validate_aws(cfg: ControllerConfig) -> list[str]:
    """Names of required AWS-mode settings that are empty (pure; `check` and `run --config` use it)."""
    required = {
        "[queue] url": cfg.queue.url,
        "[storage] inbox_bucket": cfg.storage.inbox_bucket,
        "[storage] results_bucket": cfg.storage.results_bucket,
        "[batch] job_queue": cfg.batch.job_queue,
        "[batch] job_definition_index": cfg.batch.job_definition_index,
        "[batch] job_definition_alignstats": cfg.batch.job_definition_alignstats,
        "[batch] job_definition_summary": cfg.batch.job_definition_summary,
    }
    problems = [f"{name} is required" for name, value in required.items() if not value]
    if cfg.batch.submit_rate_per_second <= 0:
        problems.append("[batch] submit_rate_per_second must be positive")
    if cfg.batch.missing_job_grace_seconds < 0:
        problems.append("[batch] missing_job_grace_seconds must be 0 or more")
    return problems


def load_qc_thresholds(cfg: ControllerConfig, path: str | None = None) -> Thresholds:
    """The verdict rules the config names (`[qc] thresholds`, else the shipped defaults), checked: a bad
    file is a ConfigError `FILE:LINE: reason` (exit 78), so `check` and `run` refuse it before starting."""
    try:
        return load_thresholds(path or cfg.thresholds_path)
    except ThresholdsError as exc:
        raise ConfigError(str(exc)) from None


def warnings(cfg: ControllerConfig) -> list[str]:
    """Settings that are allowed but probably wrong (logged at start-up)."""
    out = []
    if cfg.batch.submit_rate_per_second > 40:
        out.append(
            "[batch] submit_rate_per_second above 40: Batch allows 50 SubmitJob/s per account, shared with "
            "everything else in it; expect throttling"
        )
    if not cfg.is_local and not cfg.batch.deployment:
        out.append(
            "[batch] deployment is empty: jobs carry no alignbatch:deployment tag, and the controller "
            "stack's role refuses TerminateJob (cancel, timeouts) on them; set it to that stack's name"
        )
    if cfg.metrics.address not in ("127.0.0.1", "::1", "localhost"):
        out.append(f"[metrics] address {cfg.metrics.address}: metrics are exposed beyond loopback")
    return out


def local_config(local_dir: str | os.PathLike[str], base: ControllerConfig | None = None) -> ControllerConfig:
    """The no-AWS profile for `run --local DIR`, optionally on top of a file config's pipeline/tiers."""
    root = Path(local_dir).resolve()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--local {local_dir}: is a file; give a directory (it is created when missing)")
    cfg = base or ControllerConfig()
    return replace(
        cfg,
        local_dir=str(root),
        state=StateConfig(ledger_path=str(root / "state.db")),
        batch=replace(cfg.batch, reconcile_seconds=1),
    )
