"""Controller configuration: a TOML file (see config/controller.example.toml) plus environment overrides.
Settings records in model.py, reading them in load.py, checks and the local profile in checks.py.

Every key can be overridden with `ALIGNBATCH_<SECTION>_<KEY>` (e.g. `ALIGNBATCH_QUEUE_URL`,
`ALIGNBATCH_METRICS_PORT`); the value is coerced to the type of the default. Lists take a JSON array or a
comma/space separated string. Tiers and per-prefix pipeline options come only from the file.

`local_config(DIR)` builds the no-AWS profile used by `run --local DIR`: inbox `DIR/inbox`, results
`DIR/results`, ledger `DIR/state.db`.
"""

from __future__ import annotations

from controller.config.checks import load_qc_thresholds, local_config, validate_aws, warnings
from controller.config.load import load_config, parse_config
from controller.config.model import (
    DEFAULT_TIERS,
    AwsConfig,
    BatchConfig,
    ConfigError,
    ControllerConfig,
    CostConfig,
    FairShareConfig,
    FanoutConfig,
    LoggingConfig,
    MetricsConfig,
    PipelineConfig,
    PipelineOptions,
    PrefixOptions,
    QcConfig,
    QueueConfig,
    ShareProject,
    StateConfig,
    StorageConfig,
    Tier,
)

__all__ = [
    "DEFAULT_TIERS",
    "AwsConfig",
    "BatchConfig",
    "ConfigError",
    "ControllerConfig",
    "CostConfig",
    "FairShareConfig",
    "FanoutConfig",
    "LoggingConfig",
    "MetricsConfig",
    "PipelineConfig",
    "PipelineOptions",
    "PrefixOptions",
    "QcConfig",
    "QueueConfig",
    "ShareProject",
    "StateConfig",
    "StorageConfig",
    "Tier",
    "load_config",
    "load_qc_thresholds",
    "local_config",
    "parse_config",
    "validate_aws",
    "warnings",
]
