"""Reading a config: TOML sections and `ALIGNBATCH_<SECTION>_<KEY>` overrides, each value coerced to the
type of its default; one-line ConfigErrors that say where."""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

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
from core.logs import LOG_LEVELS

_SIMPLE_SECTIONS: dict[str, type] = {
    "aws": AwsConfig,
    "queue": QueueConfig,
    "storage": StorageConfig,
    "batch": BatchConfig,
    "metrics": MetricsConfig,
    "logging": LoggingConfig,
    "state": StateConfig,
    "qc": QcConfig,
    "cost": CostConfig,
    "fanout": FanoutConfig,
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


# Batch's rule for a shareIdentifier: at most 255 alphanumeric characters.
_SHARE_NAME = re.compile(r"^[A-Za-z0-9]{1,255}$")


def _fair_share(raw: Any, env: Mapping[str, str]) -> FairShareConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError("[fair_share] must be a table")
    top = _section(FairShareConfig, {k: v for k, v in raw.items() if k != "project"}, "fair_share", env)
    projects = []
    for i, entry in enumerate(raw.get("project", [])):
        where = f"[[fair_share.project]] #{i + 1}"
        if not isinstance(entry, Mapping) or set(entry) - {"prefix", "share", "weight"}:
            raise ConfigError(f"{where}: takes prefix, share and weight only")
        prefix, share = entry.get("prefix"), entry.get("share")
        if not isinstance(prefix, str) or not isinstance(share, str) or not _SHARE_NAME.match(share):
            raise ConfigError(f"{where}: needs a string prefix and an alphanumeric share")
        weight = _coerce(entry.get("weight", 1.0), 1.0, f"{where} weight")
        if not 0.0001 <= weight <= 999.9999:  # Batch's range for a weight factor
            raise ConfigError(f"{where}: weight must be between 0.0001 and 999.9999")
        projects.append(ShareProject(prefix, share, weight))
    if not _SHARE_NAME.match(top.default_share):
        raise ConfigError("[fair_share] default_share: alphanumeric only")
    return replace(top, projects=tuple(projects))


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


def _check_fanout(f: FanoutConfig) -> None:
    problems = [
        (f.min_projected_seconds < 0, "min_projected_seconds >= 0 (0 = never split)"),
        (f.bytes_per_second < 1, "bytes_per_second >= 1"),
        (f.target_shard_seconds < 1, "target_shard_seconds >= 1"),
        (not 2 <= f.max_shards <= 10_000, "max_shards from 2 to 10000 (Batch's array sizes)"),
        (f.shard_vcpus < 1 or f.merge_vcpus < 1, "shard_vcpus and merge_vcpus >= 1"),
        (
            f.shard_memory_mib < 128 or f.merge_memory_mib < 128,
            "shard_memory_mib and merge_memory_mib >= 128",
        ),
        (f.shard_timeout_seconds < 60, "shard_timeout_seconds >= 60"),
        (not 1 <= f.child_attempts <= 10, "child_attempts from 1 to 10 (Batch's retry attempts)"),
    ]
    for bad, rule in problems:
        if bad:
            raise ConfigError(f"[fanout] {rule}")


def parse_config(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ControllerConfig:
    """Build a config from parsed TOML and environment overrides (pure)."""
    env = os.environ if env is None else env
    known = set(_SIMPLE_SECTIONS) | {"tiers", "pipeline", "fair_share"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}] (known: {', '.join(sorted(known))})")
    sections = {name: _section(cls, data.get(name, {}), name, env) for name, cls in _SIMPLE_SECTIONS.items()}
    level = sections["logging"].level
    if level.upper() not in LOG_LEVELS:
        raise ConfigError(f"[logging] level {level!r}: use one of {', '.join(LOG_LEVELS)}")
    _check_fanout(sections["fanout"])
    tiers = _tiers(data["tiers"]) if "tiers" in data else DEFAULT_TIERS
    return ControllerConfig(
        tiers=tiers, pipeline=_pipeline(data.get("pipeline", {}), env),
        fair_share=_fair_share(data.get("fair_share", {}), env), **sections,
    )  # fmt: skip


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
        cfg = parse_config(data, env)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    thresholds = cfg.qc.thresholds
    if thresholds and not os.path.isabs(thresholds):
        # Relative to the config file, so the file and its thresholds can move together.
        here = os.path.dirname(os.path.abspath(path))
        cfg = replace(cfg, qc=replace(cfg.qc, thresholds=os.path.join(here, thresholds)))
    return cfg
