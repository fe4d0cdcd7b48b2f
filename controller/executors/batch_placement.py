"""Which Batch compute environment ran a job, and whether it was Spot (for the row and its cost).

DescribeJobs does not name the compute environment. An attempt's `containerInstanceArn` does name the ECS
cluster (`arn:aws:ecs:REGION:ACCOUNT:container-instance/CLUSTER/ID`) and each managed compute environment
has its own cluster (`ecsClusterArn`), so one DescribeComputeEnvironments (cached) answers it. When the
instance is not known (moto says "TBD"; a job that never started) and the job's queue has a single
compute environment, that one ran it; otherwise the answer is unknown (None) rather than a guess.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.executors.base import ExecutorError
from controller.placement import capacity_of

# A cluster we have not seen (a compute environment created since): look again, but not more often.
RELOAD_SECONDS = 600.0


@dataclass(frozen=True)
class _Environment:
    name: str
    capacity: str | None


class ComputeEnvironments:
    def __init__(self, call: Callable[..., Any], queues: tuple[str, ...]) -> None:
        self._call = call  # BatchExecutor._call: errors as ExecutorError
        self.queues = queues
        self._lock = threading.Lock()
        self._by_cluster: dict[str, _Environment] = {}
        self._by_queue: dict[str, tuple[_Environment, ...]] = {}
        self._loaded_at: float | None = None

    def _load(self) -> None:
        by_arn: dict[str, _Environment] = {}
        by_cluster: dict[str, _Environment] = {}
        token: str | None = None
        while True:
            resp = self._call("describe_compute_environments", **({"nextToken": token} if token else {}))
            for ce in resp.get("computeEnvironments", []):
                env = _Environment(
                    ce["computeEnvironmentName"], capacity_of((ce.get("computeResources") or {}).get("type"))
                )
                by_arn[ce["computeEnvironmentArn"]] = env
                by_arn[env.name] = env
                if ce.get("ecsClusterArn"):
                    by_cluster[ce["ecsClusterArn"].rsplit("/", 1)[-1]] = env
            token = resp.get("nextToken")
            if not token:
                break
        by_queue: dict[str, tuple[_Environment, ...]] = {}
        resp = self._call("describe_job_queues", jobQueues=list(self.queues))
        for q in resp.get("jobQueues", []):
            order = sorted(q.get("computeEnvironmentOrder") or [], key=lambda o: o.get("order", 0))
            envs = tuple(by_arn[o["computeEnvironment"]] for o in order if o["computeEnvironment"] in by_arn)
            by_queue[q["jobQueueArn"]] = by_queue[q["jobQueueName"]] = envs
        self._by_cluster, self._by_queue = by_cluster, by_queue
        self._loaded_at = time.monotonic()

    def resolve(self, job: dict[str, Any]) -> tuple[str | None, str | None]:
        """(compute environment name, capacity) of a described job's last attempt, or (None, None)."""
        attempts = job.get("attempts") or []
        if not attempts and not job.get("startedAt"):
            return None, None  # has not run anywhere yet
        instance = ((attempts[-1].get("container") or {}) if attempts else {}).get("containerInstanceArn")
        cluster = instance.split("/")[1] if instance and instance.count("/") >= 2 else None
        with self._lock:
            stale = self._loaded_at is None or (
                cluster is not None
                and cluster not in self._by_cluster
                and time.monotonic() - self._loaded_at > RELOAD_SECONDS
            )
            if stale:
                try:
                    self._load()
                except ExecutorError:  # where a job ran is worth knowing, never worth failing reconcile
                    self._loaded_at = time.monotonic()
            env = self._by_cluster.get(cluster) if cluster else None
            if env is None:
                candidates = self._by_queue.get(job.get("jobQueue", ""), ())
                env = candidates[0] if len(candidates) == 1 else None
        return (env.name, env.capacity) if env else (None, None)
