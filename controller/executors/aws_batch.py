"""AWS Batch executor: a thin typed wrapper over boto3's Batch client.

- SubmitJob with `dependsOn`, container overrides (command, vCPU/memory), tags + `propagateTags`, timeout.
- A client-side token bucket keeps SubmitJob well below Batch's 50 TPS account limit; botocore's adaptive
  retry mode backs off on throttling; throttled responses are counted per API (`on_throttle`).
- DescribeJobs in batches of 100 (the API maximum). Jobs Batch no longer returns (it forgets finished jobs
  after about a day) are simply absent from `describe`; the reconcile loop resolves them.
- `find_by_name` uses ListJobs with a JOB_NAME filter (which covers every status) to resolve a submission
  intent left by a crash.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from controller.aws import aws_client, count_throttles
from controller.executors.base import ExecutorError, FoundJob, JobStatus, SubmitRequest
from controller.executors.batch_placement import ComputeEnvironments
from controller.executors.retry import child_retry_strategy
from controller.model import Step
from controller.ratelimit import TokenBucket
from controller.states import JobState
from core.awserrors import AwsFailure, classify

DESCRIBE_BATCH = 100
# ListJobs per status (without jobStatus real Batch lists only RUNNING); every state a job can be in.
LIST_STATUSES: tuple[str, ...] = (
    "SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED",
)  # fmt: skip


def batch_client(region: str | None = None) -> Any:
    return aws_client(
        "batch", region, retry_mode="adaptive", max_attempts=10, connect_timeout=10, read_timeout=60
    )


def _seconds(ms: Any) -> float | None:
    return float(ms) / 1000.0 if isinstance(ms, int | float) and ms else None


def status_from_description(
    job: dict[str, Any], placement: tuple[str | None, str | None] = (None, None)
) -> JobStatus:
    container = job.get("container") or {}
    attempts = job.get("attempts") or []
    last = (attempts[-1].get("container") or {}) if attempts else {}
    exit_code = container.get("exitCode", last.get("exitCode"))
    return JobStatus(
        job_id=job["jobId"],
        name=job.get("jobName", ""),
        state=job.get("status", JobState.SUBMITTED),
        exit_code=int(exit_code) if isinstance(exit_code, int) else None,
        reason=job.get("statusReason") or container.get("reason") or last.get("reason"),
        log_stream=container.get("logStreamName") or last.get("logStreamName"),
        created_at=_seconds(job.get("createdAt")),
        started_at=_seconds(job.get("startedAt")),
        stopped_at=_seconds(job.get("stoppedAt")),
        compute_environment=placement[0],
        capacity=placement[1],
    )


class BatchExecutor:
    kind = "aws_batch"
    requeue_missing = False  # a job Batch forgot is resolved by its outputs or marked lost
    submits_while_stopping = False  # the rest stays PLANNED and is submitted after the restart
    supports_arrays = True  # array jobs; children are described as `<array id>:<index>`

    def __init__(
        self,
        *,
        job_queue: str,
        job_definitions: dict[str, str],
        fallback_queues: Sequence[str] = (),
        submit_rate_per_second: float = 10.0,
        client: Any = None,
        region: str | None = None,
        on_throttle: Callable[[str], None] | None = None,
        environment: dict[str, str] | None = None,
        missing_grace_seconds: float = 120.0,
        fair_share: bool | None = False,
    ) -> None:
        self.client = client if client is not None else batch_client(region)
        self.job_queue = job_queue
        # Every queue a job may have been sent to (controller.placement): names are looked up in each.
        self.queues: tuple[str, ...] = tuple(dict.fromkeys((job_queue, *fallback_queues)))
        self.environments = ComputeEnvironments(self._call, self.queues)
        # Queues with a fair-share scheduling policy need a shareIdentifier on every job; FIFO queues
        # refuse one. True: send it to every queue (`[fair_share] scheduling_policy_arn` is set); None: ask
        # each queue once (DescribeJobQueues), so a stack whose queues have a policy works before the
        # config names it (what the controller does); False: never.
        self.fair_share = fair_share
        self._queue_has_policy: dict[str, bool] = {}
        self.job_definitions = job_definitions
        self.bucket = TokenBucket(submit_rate_per_second, burst=max(1.0, submit_rate_per_second / 2))
        self.environment = dict(environment or {})
        # DescribeJobs may lag SubmitJob: a job absent for less than this is not resolved yet.
        self.missing_grace_seconds = missing_grace_seconds
        if on_throttle is not None:
            count_throttles(self.client, on_throttle)

    def _call(self, api: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, api)(**kwargs)
        except ClientError as exc:
            c = classify(exc)
            # 4xx other than throttling: Batch rejected the request itself (e.g. ClientException for a tag
            # or name it does not accept); the same request will never succeed.
            permanent = 400 <= c.status < 500 and c.failure is not AwsFailure.THROTTLED
            raise ExecutorError(
                f"Batch {api} failed: {c.code}: {c.message or None}", permanent=permanent
            ) from None
        except BotoCoreError as exc:
            raise ExecutorError(f"Batch {api} failed: {type(exc).__name__}: {exc}") from None

    def submit(self, request: SubmitRequest) -> str:
        definition = self.job_definitions.get(request.step)
        if not definition:
            raise ExecutorError(f"no job definition configured for step {request.step!r}")
        overrides: dict[str, Any] = {
            "command": list(request.command),
            "resourceRequirements": [
                {"type": "VCPU", "value": str(request.vcpus)},
                {"type": "MEMORY", "value": str(request.memory_mib)},
            ],
        }
        # The job's vCPUs for the engine's contig-parallel run (worker/cpus.py): on EC2, ECS sets CPU
        # shares, not a quota, so inside the container the host's every core looks available.
        environment = {**self.environment, "ALIGNBATCH_JOB_VCPUS": str(request.vcpus)}
        overrides["environment"] = [{"name": k, "value": v} for k, v in sorted(environment.items())]
        kwargs: dict[str, Any] = {
            "jobName": request.name,
            "jobQueue": request.queue or self.job_queue,
            "jobDefinition": definition,
            "containerOverrides": overrides,
            "tags": dict(request.tags),
            "propagateTags": True,
            "timeout": {"attemptDurationSeconds": max(60, int(request.timeout_seconds))},
        }
        if request.array_size:
            kwargs["arrayProperties"] = {"size": int(request.array_size)}
        if request.depends_on:
            # Between two arrays of the same size, child i waits for child i only (N_TO_N); a shard
            # array's children all wait for the one index job.
            kind = {"type": "N_TO_N"} if request.array_size and request.n_to_n else {}
            kwargs["dependsOn"] = [{"jobId": jid, **kind} for jid in request.depends_on]
        if request.retry_attempts:
            # Batch retries each failed child alone; the job definition's strategy (which leaves a
            # reclaim to the controller) would fail the whole array for one child's lost host.
            kwargs["retryStrategy"] = child_retry_strategy(request.retry_attempts)
        if self.fair_share or (self.fair_share is None and self._has_scheduling_policy(kwargs["jobQueue"])):
            kwargs["shareIdentifier"] = request.share or "default"
        self.bucket.acquire()
        resp = self._call("submit_job", **kwargs)
        return str(resp["jobId"])

    def _has_scheduling_policy(self, queue: str) -> bool:
        if queue not in self._queue_has_policy:
            found = self._call("describe_job_queues", jobQueues=[queue]).get("jobQueues", [])
            self._queue_has_policy[queue] = bool(found and found[0].get("schedulingPolicyArn"))
        return self._queue_has_policy[queue]

    def describe(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        out: dict[str, JobStatus] = {}
        ids = list(dict.fromkeys(job_ids))
        for i in range(0, len(ids), DESCRIBE_BATCH):
            resp = self._call("describe_jobs", jobs=ids[i : i + DESCRIBE_BATCH])
            for job in resp.get("jobs", []):
                status = status_from_description(job, self.environments.resolve(job))
                out[status.job_id] = status
        return out

    def find_by_name(self, name: str) -> JobStatus | None:
        found: list[dict[str, Any]] = []
        for queue in self.queues:  # a fallback attempt went to another queue than the default
            token: str | None = None
            while True:
                kwargs: dict[str, Any] = {
                    "jobQueue": queue,
                    "filters": [{"name": "JOB_NAME", "values": [name]}],
                }
                if token:
                    kwargs["nextToken"] = token
                resp = self._call("list_jobs", **kwargs)
                # An array job's children share its name; the job submitted under it is the parent.
                found += [
                    j for j in resp.get("jobSummaryList", [])
                    if j.get("jobName") == name and ":" not in j.get("jobId", "")
                ]  # fmt: skip
                token = resp.get("nextToken")
                if not token:
                    break
        if not found:
            return None
        newest = max(found, key=lambda j: j.get("createdAt") or 0)
        return status_from_description(newest)

    def discover(self, name_pattern: str) -> list[FoundJob]:
        """ListJobs for every status on the queue (paginated), names matched here, then DescribeJobs
        (100 a call) for their commands and tags."""
        wanted = re.compile(name_pattern)
        ids: dict[str, None] = {}
        for queue, status in ((q, s) for q in self.queues for s in LIST_STATUSES):
            token: str | None = None
            while True:
                kwargs: dict[str, Any] = {"jobQueue": queue, "jobStatus": status}
                if token:
                    kwargs["nextToken"] = token
                resp = self._call("list_jobs", **kwargs)
                for j in resp.get("jobSummaryList", []):
                    # Array children (`<parent>:<i>`, the parent's name) are not listed by AWS without
                    # arrayJobId; moto lists them. The parent is what was submitted under the name.
                    if wanted.search(j.get("jobName", "")) and ":" not in j["jobId"]:
                        ids[j["jobId"]] = None
                token = resp.get("nextToken")
                if not token:
                    break
        found: list[FoundJob] = []
        listed = list(ids)
        for i in range(0, len(listed), DESCRIBE_BATCH):
            resp = self._call("describe_jobs", jobs=listed[i : i + DESCRIBE_BATCH])
            for job in resp.get("jobs", []):
                container = job.get("container") or {}
                found.append(
                    FoundJob(
                        status=status_from_description(job),
                        command=tuple(container.get("command") or ()),
                        tags=dict(job.get("tags") or {}),
                    )
                )
        return found

    def cancel(self, job_ids: Iterable[str], reason: str) -> None:
        # TerminateJob cancels jobs that have not started and stops running ones.
        for jid in job_ids:
            self._call("terminate_job", jobId=jid, reason=reason[:1024])

    def active_count(self) -> int:
        return 0  # jobs run in Batch, not in this process

    def close(self, *, wait: bool) -> None:
        return None


def job_definitions_from_config(batch: Any) -> dict[str, str]:
    """Step name -> job definition, one per step of the plan (controller.model.Step)."""
    return {
        Step.INDEX: batch.job_definition_index,
        # The shard children run the alignstats image with their own resources (SubmitJob overrides).
        Step.SHARD: batch.job_definition_alignstats,
        Step.ALIGNSTATS: batch.job_definition_alignstats,
        Step.SUMMARY: batch.job_definition_summary,
    }


def forwarded_environment() -> dict[str, str]:
    """Variables the controller passes on to jobs (only for emulated endpoints in tests/dev)."""
    keep = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
    return {
        k: os.environ[k] for k in keep if os.environ.get(k) and os.environ.get("ALIGNBATCH_FORWARD_ENDPOINT")
    }
