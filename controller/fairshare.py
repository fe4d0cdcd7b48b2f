"""Fair-share weights from the configuration into the batch stack's scheduling policy, at start.

The policy (deploy/cloudformation/batch.yaml SchedulingPolicy) belongs to CloudFormation, but its weights
are the operators' to tune per project ([[fair_share.project]] weight) without a stack update, so the
controller writes them: one DescribeSchedulingPolicies, and an UpdateSchedulingPolicy only when the
distribution differs. The decay and the compute reservation stay as the stack set them.
"""

from __future__ import annotations

from typing import Any

from controller.config import FairShareConfig
from core.logs import get_logger


def distribution(cfg: FairShareConfig) -> list[dict[str, Any]]:
    """The policy's shareDistribution for the configured weights (pure), sorted for comparison."""
    return [{"shareIdentifier": s, "weightFactor": float(w)} for s, w in sorted(cfg.weights().items())]


def apply_weights(client: Any, cfg: FairShareConfig) -> bool:
    """Write the weights into the policy when they differ; True when it was updated. Raises botocore's
    errors (the caller logs them: a controller with stale weights still schedules fairly)."""
    if not cfg.enabled:
        return False
    log = get_logger(component="controller")
    resp = client.describe_scheduling_policies(arns=[cfg.scheduling_policy_arn])
    found = resp.get("schedulingPolicies", [])
    if not found:
        raise LookupError(f"[fair_share] scheduling_policy_arn {cfg.scheduling_policy_arn}: no such policy")
    current: dict[str, Any] = dict(found[0].get("fairsharePolicy") or {})
    have = sorted(
        ({"shareIdentifier": d["shareIdentifier"], "weightFactor": float(d.get("weightFactor", 1.0))}
         for d in current.get("shareDistribution") or []),
        key=lambda d: d["shareIdentifier"],
    )  # fmt: skip
    want = distribution(cfg)
    if have == want:
        return False
    policy = {k: v for k, v in current.items() if k in ("shareDecaySeconds", "computeReservation")}
    client.update_scheduling_policy(
        arn=cfg.scheduling_policy_arn, fairsharePolicy={**policy, "shareDistribution": want}
    )
    log.info("fair_share.weights_applied", policy=cfg.scheduling_policy_arn, weights=cfg.weights())
    return True
