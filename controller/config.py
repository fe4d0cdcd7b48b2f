"""Controller configuration: a TOML file (see config/controller.example.toml) plus environment overrides.

Every key can be overridden with `ALIGNBATCH_<SECTION>_<KEY>` (e.g. `ALIGNBATCH_QUEUE_URL`,
`ALIGNBATCH_METRICS_PORT`); the value is coerced to the type of the default. Lists take a JSON array or a
comma/space separated string. Tiers and per-prefix pipeline options come only from the file.

`local_config(DIR)` builds the no-AWS profile used by `run --local DIR`: inbox `DIR/inbox`, results
`DIR/results`, ledger `DIR/state.db`.
"""

from __future__ import annotations

import json
import os
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from core.logs import LOG_LEVELS


class ConfigError(ValueError):
    """A one-line, operator-facing description of what is wrong in the config and where."""


@dataclass(frozen=True)
class AwsConfig:
    region: str = ""


@dataclass(frozen=True)
class QueueConfig:
    url: str = ""
    dlq_url: str = ""
    wait_seconds: int = 20
    visibility_timeout: int = 900


@dataclass(frozen=True)
class StorageConfig:
    inbox_bucket: str = ""
    inbox_prefix: str = ""
    results_bucket: str = ""
    results_prefix: str = ""
    reference_bucket: str = ""
    kms_key_id: str = ""


@dataclass(frozen=True)
class BatchConfig:
    job_queue: str = ""
    job_definition_index: str = ""
    job_definition_alignstats: str = ""
    job_definition_summary: str = ""
    submit_rate_per_second: float = 10.0
    runnable_alarm_seconds: int = 3600
    reconcile_seconds: int = 30
    # How long a submitted job may be absent from DescribeJobs before it is resolved by its outputs or
    # marked LOST (DescribeJobs can lag SubmitJob; Batch forgets finished jobs after about a day).
    missing_job_grace_seconds: int = 120


@dataclass(frozen=True)
class Tier:
    """Resources for inputs up to `max_bytes` (0 = no upper bound)."""

    max_bytes: int
    vcpus: int
    memory_mib: int
    timeout_seconds: int = 6 * 3600


@dataclass(frozen=True)
class PipelineOptions:
    alignstats_args: tuple[str, ...] = ("-C",)
    target_bed: str = ""
    reference_fasta: str = ""


@dataclass(frozen=True)
class PrefixOptions:
    prefix: str
    options: PipelineOptions


@dataclass(frozen=True)
class PipelineConfig:
    default: PipelineOptions = field(default_factory=PipelineOptions)
    prefixes: tuple[PrefixOptions, ...] = ()

    def for_key(self, key: str) -> PipelineOptions:
        """Options for an inbox key: the longest matching `[[pipeline.prefix]]` wins."""
        best: PrefixOptions | None = None
        for entry in self.prefixes:
            if key.startswith(entry.prefix) and (best is None or len(entry.prefix) > len(best.prefix)):
                best = entry
        return best.options if best else self.default


@dataclass(frozen=True)
class MetricsConfig:
    address: str = "127.0.0.1"
    port: int = 9464


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    cloudwatch_group: str = ""
    cloudwatch_stream: str = ""
    cloudwatch_retention_days: int = 0


@dataclass(frozen=True)
class StateConfig:
    ledger_path: str = "/var/lib/alignbatch/state.db"


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier(max_bytes=2 * 1024**3, vcpus=1, memory_mib=2048, timeout_seconds=2 * 3600),
    Tier(max_bytes=20 * 1024**3, vcpus=2, memory_mib=4096, timeout_seconds=6 * 3600),
    Tier(max_bytes=0, vcpus=4, memory_mib=8192, timeout_seconds=12 * 3600),
)


@dataclass(frozen=True)
class ControllerConfig:
    aws: AwsConfig = field(default_factory=AwsConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    state: StateConfig = field(default_factory=StateConfig)
    # Set by local_config(): the directory of `run --local DIR` (None in AWS mode).
    local_dir: str | None = None

    @property
    def is_local(self) -> bool:
        return self.local_dir is not None

    @property
    def inbox_root(self) -> str:
        """Where inbox keys are relative to: `s3://bucket/prefix` or a local directory."""
        if self.local_dir is not None:
            return str(Path(self.local_dir, "inbox"))
        return _s3_root(self.storage.inbox_bucket, self.storage.inbox_prefix)

    @property
    def results_root(self) -> str:
        if self.local_dir is not None:
            return str(Path(self.local_dir, "results"))
        return _s3_root(self.storage.results_bucket, self.storage.results_prefix)


def _s3_root(bucket: str, prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


_SIMPLE_SECTIONS: dict[str, type] = {
    "aws": AwsConfig,
    "queue": QueueConfig,
    "storage": StorageConfig,
    "batch": BatchConfig,
    "metrics": MetricsConfig,
    "logging": LoggingConfig,
    "state": StateConfig,
}


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Coerce a TOML or environment value to the type of the field's default."""
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, int):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if isinstance(default, tuple):
            return _as_str_tuple(value, where)
        if isinstance(default, str):
            if not isinstance(value, str):
                raise ValueError(value)
            return value
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {type(default).__name__}, got {value!r}") from None
    return value


def _as_str_tuple(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not a JSON list: {exc.msg}") from None
        else:
            return tuple(shlex.split(text.replace(",", " ")))
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def _section(cls: type, raw: Mapping[str, Any], name: str, env: Mapping[str, str]) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"[{name}] must be a table")
    defaults = cls()
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"[{name}] unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for f in fields(cls):
        default = getattr(defaults, f.name)
        env_name = f"ALIGNBATCH_{name.upper()}_{f.name.upper()}"
        if env_name in env:
            values[f.name] = _coerce(env[env_name], default, env_name)
        elif f.name in raw:
            values[f.name] = _coerce(raw[f.name], default, f"[{name}] {f.name}")
    return replace(defaults, **values)


def _pipeline_options(raw: Mapping[str, Any], where: str, base: PipelineOptions) -> PipelineOptions:
    known = {"alignstats_args", "target_bed", "reference_fasta", "prefix"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where} unknown key {unknown[0]!r}")
    opts = base
    if "alignstats_args" in raw:
        opts = replace(
            opts, alignstats_args=_as_str_tuple(raw["alignstats_args"], f"{where} alignstats_args")
        )
    for name in ("target_bed", "reference_fasta"):
        if name in raw:
            opts = replace(opts, **{name: _coerce(raw[name], "", f"{where} {name}")})
    return opts


def _pipeline(raw: Mapping[str, Any], env: Mapping[str, str]) -> PipelineConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError("[pipeline] must be a table")
    top = {k: v for k, v in raw.items() if k != "prefix"}
    for key in ("alignstats_args", "target_bed", "reference_fasta"):
        env_name = f"ALIGNBATCH_PIPELINE_{key.upper()}"
        if env_name in env:
            top[key] = env[env_name]
    default = _pipeline_options(top, "[pipeline]", PipelineOptions())
    prefixes = []
    for i, entry in enumerate(raw.get("prefix", [])):
        where = f"[[pipeline.prefix]] #{i + 1}"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("prefix"), str):
            raise ConfigError(f"{where}: needs a string 'prefix'")
        prefixes.append(PrefixOptions(entry["prefix"], _pipeline_options(entry, where, default)))
    return PipelineConfig(default=default, prefixes=tuple(prefixes))


def _tiers(raw: Any) -> tuple[Tier, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("[[tiers]] must be a non-empty array of tables")
    tiers = []
    for i, entry in enumerate(raw):
        where = f"[[tiers]] #{i + 1}"
        try:
            tier = Tier(**{k: int(v) for k, v in entry.items()})
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}: needs integer max_bytes, vcpus, memory_mib[, timeout_seconds]"
            ) from None
        if tier.vcpus < 1 or tier.memory_mib < 128 or tier.max_bytes < 0 or tier.timeout_seconds < 60:
            raise ConfigError(f"{where}: vcpus >= 1, memory_mib >= 128, timeout_seconds >= 60 required")
        tiers.append(tier)
    # Bounded tiers ascending, the open-ended one (max_bytes = 0) last.
    tiers.sort(key=lambda t: (t.max_bytes == 0, t.max_bytes))
    return tuple(tiers)


def parse_config(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ControllerConfig:
    """Build a config from parsed TOML and environment overrides (pure)."""
    env = os.environ if env is None else env
    known = set(_SIMPLE_SECTIONS) | {"tiers", "pipeline"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}] (known: {', '.join(sorted(known))})")
    sections = {name: _section(cls, data.get(name, {}), name, env) for name, cls in _SIMPLE_SECTIONS.items()}
    level = sections["logging"].level
    if level.upper() not in LOG_LEVELS:
        raise ConfigError(f"[logging] level {level!r}: use one of {', '.join(LOG_LEVELS)}")
    tiers = _tiers(data["tiers"]) if "tiers" in data else DEFAULT_TIERS
    return ControllerConfig(tiers=tiers, pipeline=_pipeline(data.get("pipeline", {}), env), **sections)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> ControllerConfig:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found (start from config/controller.example.toml)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_config(data, env)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


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


def warnings(cfg: ControllerConfig) -> list[str]:
    """Settings that are allowed but probably wrong (logged at start-up)."""
    out = []
    if cfg.batch.submit_rate_per_second > 40:
        out.append(
            "[batch] submit_rate_per_second above 40: Batch allows 50 SubmitJob/s per account, shared with "
            "everything else in it; expect throttling"
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
