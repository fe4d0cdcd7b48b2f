"""Build a controller for its mode, chosen once from the config: `run --local DIR` (local inbox, local
processes) or AWS (SQS, Batch, S3). The only place outside the Inbox strategies that knows which is which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from controller.config import ControllerConfig, validate_aws
from controller.executors.base import Executor
from controller.inbox import inbox_for
from controller.ledger import Ledger
from controller.metrics import Metrics
from controller.service import Controller
from controller.sources.base import EventSource
from core.qc import Thresholds


@dataclass(frozen=True)
class Mode:
    """What the daemon and CLI ask about the mode (instead of testing a boolean)."""

    name: str  # "local" | "aws": the daemon.ready log field
    where: str  # how operator commands reach this controller's ledger
    gauge_seconds: float  # local gauges cost nothing (no SQS call): refresh them more often
    demo_inbox: Path | None  # where `run --demo` seeds the sample BAMs (local only)
    ships_logs: bool  # CloudWatch shipping applies ([logging] cloudwatch_group)

    def problems(self, cfg: ControllerConfig) -> list[str]:
        """Settings this mode needs that are missing (the AWS names; the local profile needs none)."""
        if self.name != "aws":
            return []
        problems = validate_aws(cfg)
        if cfg.batch.events_enabled and not cfg.batch.state_queue_url:
            problems.append(
                "[batch] events_enabled needs state_queue_url (ALIGNBATCH_BATCH_STATE_QUEUE_URL; the "
                "JobStateQueueUrl stack output): the inbox queue's intake ignores Batch events"
            )
        return problems


def mode_for(cfg: ControllerConfig) -> Mode:
    if cfg.is_local:
        root = Path(cfg.local_dir or ".")
        return Mode("local", f"--local {cfg.local_dir}", 5.0, root / "inbox", ships_logs=False)
    return Mode("aws", "--config FILE", 15.0, None, ships_logs=True)


def build_executor(cfg: ControllerConfig, metrics: Metrics, *, slots: int | None = None) -> Executor:
    if cfg.is_local:
        from controller.executors.local import LocalExecutor

        root = Path(cfg.local_dir or ".")
        (root / "results").mkdir(parents=True, exist_ok=True)
        return LocalExecutor(root / "logs", slots=slots)
    from controller.executors.aws_batch import (
        BatchExecutor,
        forwarded_environment,
        job_definitions_from_config,
    )

    return BatchExecutor(
        job_queue=cfg.batch.job_queue,
        fallback_queues=cfg.batch.fallback_queues,
        job_definitions=job_definitions_from_config(cfg.batch),
        submit_rate_per_second=cfg.batch.submit_rate_per_second,
        region=cfg.aws.region or None,
        on_throttle=lambda api: metrics.throttled.labels(api=api).inc(),
        environment=forwarded_environment(),
        missing_grace_seconds=cfg.batch.missing_job_grace_seconds,
        fair_share=True if cfg.fair_share.enabled else None,  # else: as each queue says
    )


def build_source(cfg: ControllerConfig, metrics: Metrics, *, once: bool = False) -> EventSource:
    if cfg.is_local:
        from controller.sources.local_inbox import LocalInboxSource

        root = Path(cfg.local_dir or ".")
        return LocalInboxSource(root / "inbox", settle_seconds=1.0, poll_seconds=0.2 if once else 1.0)
    from controller.sources.sqs import SqsSource

    return SqsSource(
        cfg.queue.url,
        dlq_url=cfg.queue.dlq_url,
        wait_seconds=min(cfg.queue.wait_seconds, 1) if once else cfg.queue.wait_seconds,
        visibility_timeout=cfg.queue.visibility_timeout,
        region=cfg.aws.region or None,
        on_throttle=lambda api: metrics.throttled.labels(api=api).inc(),
    )


def build_state_source(cfg: ControllerConfig, metrics: Metrics, *, once: bool = False) -> EventSource | None:
    """The queue EventBridge sends Batch Job State Change events to; None unless [batch] events_enabled
    (AWS only: the local executor's states are read from its processes)."""
    if cfg.is_local or not cfg.batch.events_enabled or not cfg.batch.state_queue_url:
        return None
    from controller.sources.sqs import SqsSource

    return SqsSource(
        cfg.batch.state_queue_url,
        wait_seconds=min(cfg.queue.wait_seconds, 1) if once else cfg.queue.wait_seconds,
        visibility_timeout=60,
        region=cfg.aws.region or None,
        on_throttle=lambda api: metrics.throttled.labels(api=api).inc(),
    )


def build_controller(
    cfg: ControllerConfig,
    *,
    metrics: Metrics | None = None,
    once: bool = False,
    slots: int | None = None,
    with_source: bool = True,
    thresholds: Thresholds | None = None,
) -> Controller:
    from controller.recovery import prepare_ledger, rebuild

    metrics = metrics or Metrics()
    inbox = inbox_for(cfg)
    store = inbox.object_store()
    # A running controller that finds no ledger file restores the latest backup, then merges in what
    # rows/ and the executor know (controller.recovery); the CLI's one-off builds never do.
    recover = with_source and cfg.state.restore_on_start
    outcome = prepare_ledger(store, cfg.results_root, cfg.state.ledger_path) if recover else "existing"
    ledger = Ledger(cfg.state.ledger_path)
    executor = build_executor(cfg, metrics, slots=slots)
    source = build_source(cfg, metrics, once=once) if with_source else None
    state_source = build_state_source(cfg, metrics, once=once) if with_source else None
    ctl = Controller(
        cfg, ledger=ledger, executor=executor, source=source, metrics=metrics, inbox=inbox, store=store,
        state_source=state_source, thresholds=thresholds,
    )  # fmt: skip
    if outcome != "existing":
        rebuild(ctl, outcome)
    if with_source and cfg.fair_share.enabled and not cfg.is_local:
        _apply_fair_share(ctl)
    return ctl


def _apply_fair_share(ctl: Controller) -> None:
    """The configured fair-share weights into the stack's policy (controller.fairshare); a failure is
    logged, never fatal: the queues still share fairly, with the weights they had."""
    from botocore.exceptions import BotoCoreError, ClientError

    from controller.executors.aws_batch import batch_client
    from controller.fairshare import apply_weights
    from core.logs import get_logger

    try:
        apply_weights(batch_client(ctl.cfg.aws.region or None), ctl.cfg.fair_share)
    except (BotoCoreError, ClientError, LookupError) as exc:
        get_logger(component="controller").error(
            "fair_share.weights_failed", error=str(exc), fix="check [fair_share] scheduling_policy_arn"
        )
