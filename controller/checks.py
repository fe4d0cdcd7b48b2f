"""`check --config FILE`: does every AWS resource the config names exist and look usable?

Each check is one read-only call; the result is (ok, what, detail) so the CLI prints one line per
resource and the deploy tests can assert on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.aws import aws_client
from controller.config import ControllerConfig
from controller.executors.aws_batch import job_definitions_from_config
from core.awserrors import AwsFailure, classify

Result = tuple[bool, str, str]


def _client(service: str, cfg: ControllerConfig) -> Any:
    return aws_client(service, cfg.aws.region, retry_mode="standard", max_attempts=3)


def _try(what: str, fn: Callable[[], str]) -> Result:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return True, what, fn()
    except ClientError as exc:
        err = exc.response.get("Error", {})
        return False, what, f"{err.get('Code')}: {err.get('Message', '')}".strip()
    except BotoCoreError as exc:
        return False, what, f"{type(exc).__name__}: {exc}"
    except LookupError as exc:
        return False, what, str(exc)


def check_resources(cfg: ControllerConfig) -> list[Result]:
    sqs, s3, batch = _client("sqs", cfg), _client("s3", cfg), _client("batch", cfg)
    results: list[Result] = []

    def queue(url: str) -> Callable[[], str]:
        def run() -> str:
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy"])
            return attrs["Attributes"].get("QueueArn", "")

        return run

    results.append(_try(f"queue {cfg.queue.url}", queue(cfg.queue.url)))
    if cfg.queue.dlq_url:
        results.append(_try(f"dead-letter queue {cfg.queue.dlq_url}", queue(cfg.queue.dlq_url)))

    def bucket_check(bucket: str, prefix: str) -> Callable[[], str]:
        # ListObjectsV2 under our own prefix, not HeadBucket: the controller's role may list only under
        # its prefixes (an s3:prefix condition), which HeadBucket cannot satisfy.
        def run() -> str:
            from botocore.exceptions import ClientError

            try:
                s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
            except ClientError as exc:
                if classify(exc).failure is AwsFailure.DENIED:
                    return "exists (listing denied here; that is fine if the role lists only its prefix)"
                raise
            return f"prefix {prefix!r}" if prefix else ""

        return run

    storage = cfg.storage
    results_prefix = storage.results_prefix.strip("/") + "/" if storage.results_prefix.strip("/") else ""
    for label, bucket, prefix in (
        ("inbox bucket", storage.inbox_bucket, storage.inbox_prefix),
        ("results bucket", storage.results_bucket, results_prefix),
        ("reference bucket", storage.reference_bucket, ""),
    ):
        if bucket:
            results.append(_try(f"{label} s3://{bucket}", bucket_check(bucket, prefix)))

    def job_queue(name: str) -> str:
        found = batch.describe_job_queues(jobQueues=[name]).get("jobQueues", [])
        if not found:
            raise LookupError("no such job queue")
        q = found[0]
        if q.get("state") != "ENABLED":
            raise LookupError(f"job queue is {q.get('state')}")
        return f"{q.get('state')}/{q.get('status')}"

    for queue in cfg.batch.queues:  # the default queue and every Spot-fallback queue
        results.append(_try(f"job queue {queue}", lambda q=queue: job_queue(q)))
    for step, name in job_definitions_from_config(cfg.batch).items():

        def job_def(name: str = name) -> str:
            kwargs: dict[str, Any] = (
                {"jobDefinitions": [name]} if ":" in name else {"jobDefinitionName": name, "status": "ACTIVE"}
            )
            found = [d for d in batch.describe_job_definitions(**kwargs).get("jobDefinitions", [])]
            active = [d for d in found if d.get("status") == "ACTIVE"]
            if not active:
                raise LookupError("no ACTIVE job definition")
            return f"revision {max(d.get('revision', 0) for d in active)}"

        results.append(_try(f"job definition ({step}) {name}", job_def))
    if cfg.storage.kms_key_id:
        kms = _client("kms", cfg)
        results.append(
            _try(
                f"KMS key {cfg.storage.kms_key_id}",
                lambda: kms.describe_key(KeyId=cfg.storage.kms_key_id)["KeyMetadata"].get("KeyState", ""),
            )
        )
    if cfg.logging.cloudwatch_group:
        logs = _client("logs", cfg)

        def group() -> str:
            groups = logs.describe_log_groups(logGroupNamePrefix=cfg.logging.cloudwatch_group)["logGroups"]
            if not any(g["logGroupName"] == cfg.logging.cloudwatch_group for g in groups):
                raise LookupError("no such log group")
            return ""

        results.append(_try(f"log group {cfg.logging.cloudwatch_group}", group))
    return results
