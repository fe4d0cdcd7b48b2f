"""The controller's settings as frozen records, one per TOML section, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
    # Batch Job State Change events (EventBridge → the inbox queue, or `state_queue_url`) applied as they
    # arrive; reconcile then runs every `events_sweep_seconds` instead of `reconcile_seconds`, catching
    # jobs no event was seen for.
    events_enabled: bool = False
    state_queue_url: str = ""
    events_sweep_seconds: int = 300
    # Tagged on every job as alignbatch:deployment (the controller stack's name when rendered by
    # deploy/render_config.py); that stack's role may terminate only jobs with its own value.
    deployment: str = ""
    # Spot fallback (controller.placement): a step whose host Batch took away (`Host EC2*`) is submitted
    # again; after `reclaims_before_fallback` reclaims on one queue the next attempt goes to the next of
    # `fallback_queues` (the On-Demand queue). `max_reclaims` reclaims of one step fail its run.
    fallback_queues: tuple[str, ...] = ()
    reclaims_before_fallback: int = 2
    max_reclaims: int = 6
    # Array jobs for bursts and backfills (controller/array_submit.py): when at least `array_min_runs`
    # runs of the same shape wait with nothing submitted, each step goes as one array job of up to
    # `array_max_size` children (Batch allows 10,000); fewer go as single jobs, sooner. 0 = never.
    array_min_runs: int = 100
    array_max_size: int = 10_000

    @property
    def queues(self) -> tuple[str, ...]:
        """Every queue jobs may go to, in fallback order (the default queue first)."""
        return tuple(dict.fromkeys(q for q in (self.job_queue, *self.fallback_queues) if q))


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
class ShareProject:
    """Inbox keys under `prefix` belong to the fair-share `share` (a project), weighted `weight`."""

    prefix: str
    share: str
    weight: float = 1.0


@dataclass(frozen=True)
class FairShareConfig:
    """`[fair_share]`: Batch fair-share scheduling across projects (deploy: the batch stack's
    SchedulingPolicy). Each job carries the `shareIdentifier` of its inbox key's project (longest
    `[[fair_share.project]] prefix` wins; else `default_share`), sent only when `scheduling_policy_arn`
    is set (a queue without a policy refuses it). The controller writes the weights into that policy at
    start. Batch's weight factor is inverse: a share with weight 2 gets half the capacity of one with 1.
    """

    scheduling_policy_arn: str = ""
    default_share: str = "default"
    default_weight: float = 1.0
    projects: tuple[ShareProject, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.scheduling_policy_arn)

    def share_for(self, inbox_key: str) -> str:
        best: ShareProject | None = None
        for p in self.projects:
            if inbox_key.startswith(p.prefix) and (best is None or len(p.prefix) > len(best.prefix)):
                best = p
        return best.share if best else self.default_share

    def weights(self) -> dict[str, float]:
        """Share identifier -> weight factor, the default share included."""
        out = {self.default_share: self.default_weight}
        for p in self.projects:
            out[p.share] = p.weight
        return out


@dataclass(frozen=True)
class CostConfig:
    """`[cost]`: list prices per vCPU-hour and GiB-hour (controller.cost). The defaults split the
    us-east-1 Linux On-Demand prices of m6i.large ($0.096/h: 2 vCPU, 8 GiB) and c6i.large ($0.085/h:
    2 vCPU, 4 GiB), which differ only by 4 GiB: $0.00275 per GiB-hour, then $0.037 per vCPU-hour. Spot:
    those times 0.35, a placeholder 65 % discount (no public figure was found to take; the EC2 console's
    Spot savings view gives your own per-vCPU-hour and per-GiB-hour costs). Re-take them for your region
    and families; `prices_as_of` says when."""

    on_demand_vcpu_hour: float = 0.037
    on_demand_gib_hour: float = 0.00275
    spot_vcpu_hour: float = 0.01295
    spot_gib_hour: float = 0.0009625
    prices_as_of: str = "2026-12-01"
    prices_source: str = "m6i.large/c6i.large On-Demand, us-east-1, Linux; Spot assumed 35 % of it"


@dataclass(frozen=True)
class FanoutConfig:
    """`[fanout]`: one large indexed BAM as a shard array across Batch jobs, then a merge (#17).

    A run's projected time is its size over `bytes_per_second` (the built-in engine on one core: ~107
    MB/s on case e, docs/engine.md); at or over `min_projected_seconds` the object is split into
    ceil(projected / `target_shard_seconds`) shards, at least 2 and at most `max_shards`, balanced by the
    index's mapped-record counts (worker/engine/shardplan.py); with the index next to the object at
    planning, no more than the groups that read something and shorten the run
    (controller/index_layout.py). 0 = never split. A shard child that fails is
    retried alone, up to `child_attempts` attempts, by Batch's retry strategy (a Spot reclaim included);
    a child whose part is already written does nothing (a retried run redoes only what is missing)."""

    min_projected_seconds: int = 900
    bytes_per_second: int = 100_000_000
    target_shard_seconds: int = 120
    max_shards: int = 64
    shard_vcpus: int = 2
    shard_memory_mib: int = 4096
    shard_timeout_seconds: int = 3 * 3600
    merge_vcpus: int = 1
    merge_memory_mib: int = 2048
    child_attempts: int = 3


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
    # The Batch jobs' log group (the storage stack's JobLogGroup): the QC report links failed jobs' logs
    # in the CloudWatch console; empty, it shows the log stream's name.
    job_log_group: str = ""


@dataclass(frozen=True)
class QcConfig:
    """`[qc] thresholds`: the verdict rules (core.qc). Empty: the shipped core/thresholds.toml. A relative
    path is relative to the config file's directory."""

    thresholds: str = ""
    # The batch report is re-rendered at most this often (each render reads the day's history and draws
    # its plots: ~0.7 s per 500 rows); rows finished meanwhile wait for the next render, and a stop or
    # the end of `run --once` always renders what is left. 0: after every table write.
    report_interval_seconds: int = 60


@dataclass(frozen=True)
class StateConfig:
    ledger_path: str = "/var/lib/alignbatch/state.db"
    # A snapshot of the ledger (SQLite's online backup API, gzip) to <results root>/ledger/ this often;
    # 0 = never. The recovery point: at most this much (plus one upload) is lost with the host.
    backup_seconds: int = 300
    # Starting with no ledger file: restore the latest backup, else rebuild from rows/ and Batch.
    restore_on_start: bool = True


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
    qc: QcConfig = field(default_factory=QcConfig)
    fair_share: FairShareConfig = field(default_factory=FairShareConfig)
    cost: CostConfig = field(default_factory=CostConfig)
    fanout: FanoutConfig = field(default_factory=FanoutConfig)
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
    def thresholds_path(self) -> str:
        """The thresholds file verdicts come from: `[qc] thresholds`, else the shipped defaults."""
        from core.qc import shipped_thresholds_path

        return self.qc.thresholds or str(shipped_thresholds_path())

    @property
    def state_dir(self) -> Path:
        """The ledger's directory: local state beside it (the QC history)."""
        return Path(self.state.ledger_path).parent

    @property
    def results_root(self) -> str:
        if self.local_dir is not None:
            return str(Path(self.local_dir, "results"))
        return _s3_root(self.storage.results_bucket, self.storage.results_prefix)


def _s3_root(bucket: str, prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
