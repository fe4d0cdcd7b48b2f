#!/usr/bin/env python3
"""Render the controller's TOML configuration from the CloudFormation stack outputs alone.

    python deploy/render_config.py --stack-prefix alignbatch > /etc/alignbatch/controller.toml

reads the outputs of `<prefix>-storage` and `<prefix>-batch` (names overridable with --storage-stack and
--batch-stack) and prints a config `alignbatch-controller check --config FILE` accepts. The controller
host's user data (deploy/cloudformation/controller.yaml) runs exactly this. Only the standard AWS
environment is used (AWS_REGION, AWS_ENDPOINT_URL, credentials), so it works against moto as well.

Exit codes: 0 rendered; 2 usage; 66 a stack or a required output is missing (the message names it);
75 AWS could not be asked (no credentials, network, throttling; the message says which).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Output name in each stack -> where it goes in the config. Kept in one place so the deploy tests can
# check that every output the controller needs exists (COMMON §4).
STORAGE_OUTPUTS = (
    "InboxBucket",
    "InboxPrefix",
    "ResultsBucket",
    "ResultsPrefix",
    "ReferenceBucket",
    "InboxQueueUrl",
    "DeadLetterQueueUrl",
    "KmsKeyArn",
    "ControllerLogGroup",
    "JobLogGroup",
)
BATCH_OUTPUTS = (
    "JobQueue",
    "JobQueueOnDemand",
    "JobDefinitionIndex",
    "JobDefinitionAlignstats",
    "JobDefinitionSummary",
    "SchedulingPolicyArn",
)
EX_USAGE = 2
EX_NOINPUT = 66
EX_TEMPFAIL = 75


class MissingOutput(LookupError):
    """A stack or one of its outputs is absent; the message is one line naming it and the fix."""


@dataclass(frozen=True)
class RenderOptions:
    region: str
    on_demand: bool = False  # submit to the On-Demand queue instead of the default Spot-first one
    metrics_address: str = "127.0.0.1"
    metrics_port: int = 9464
    ledger_path: str = "/var/lib/alignbatch/state.db"
    log_level: str = "INFO"
    target_bed: str = ""
    reference_fasta: str = ""
    # The controller stack's JobStateQueueUrl: Batch job states then arrive as events and reconcile is a
    # slower sweep; empty keeps DescribeJobs polling alone (a deployment without the controller stack's rule).
    state_queue_url: str = ""
    deployment: str = ""  # the controller stack's name: every job's alignbatch:deployment tag


def _toml_str(value: str) -> str:
    # A JSON string with ASCII escapes is a valid TOML basic string (same escapes, \uXXXX included).
    return json.dumps(value, ensure_ascii=True)


def _need(outputs: Mapping[str, str], stack: str, names: Sequence[str]) -> None:
    missing = [n for n in names if n not in outputs]
    if missing:
        raise MissingOutput(
            f"stack {stack!r} has no output {missing[0]!r}; deploy deploy/cloudformation/ from this checkout"
        )


def render(
    storage: Mapping[str, str],
    batch: Mapping[str, str],
    opts: RenderOptions,
    *,
    storage_stack: str = "storage",
    batch_stack: str = "batch",
) -> str:
    """The controller TOML for these stack outputs (pure)."""
    _need(storage, storage_stack, STORAGE_OUTPUTS)
    _need(batch, batch_stack, BATCH_OUTPUTS)
    sections: list[tuple[str, list[tuple[str, str]]]] = [
        ("aws", [("region", _toml_str(opts.region))]),
        (
            "queue",
            [
                ("url", _toml_str(storage["InboxQueueUrl"])),
                ("dlq_url", _toml_str(storage["DeadLetterQueueUrl"])),
                # Same values as the queue's own ReceiveMessageWaitTimeSeconds / VisibilityTimeout.
                ("wait_seconds", "20"),
                ("visibility_timeout", "900"),
            ],
        ),
        (
            "storage",
            [
                ("inbox_bucket", _toml_str(storage["InboxBucket"])),
                ("inbox_prefix", _toml_str(storage["InboxPrefix"])),
                ("results_bucket", _toml_str(storage["ResultsBucket"])),
                ("results_prefix", _toml_str(storage["ResultsPrefix"])),
                ("reference_bucket", _toml_str(storage["ReferenceBucket"])),
                ("kms_key_id", _toml_str(storage["KmsKeyArn"])),
            ],
        ),
        (
            "batch",
            [
                ("job_queue", _toml_str(batch["JobQueueOnDemand" if opts.on_demand else "JobQueue"])),
                # Spot fallback: a step reclaimed `reclaims_before_fallback` times goes On-Demand.
                *([] if opts.on_demand else [("fallback_queues", json.dumps([batch["JobQueueOnDemand"]]))]),
                # Names without a revision: Batch runs the latest ACTIVE revision, so a deploy that
                # registers a new one never breaks the controller or jobs already submitted.
                ("job_definition_index", _toml_str(batch["JobDefinitionIndex"])),
                ("job_definition_alignstats", _toml_str(batch["JobDefinitionAlignstats"])),
                ("job_definition_summary", _toml_str(batch["JobDefinitionSummary"])),
                ("deployment", _toml_str(opts.deployment)),
                *(
                    [("events_enabled", "true"), ("state_queue_url", _toml_str(opts.state_queue_url))]
                    if opts.state_queue_url
                    else []
                ),
            ],
        ),
        (
            "pipeline",
            [
                ("alignstats_args", '["-C"]'),
                ("target_bed", _toml_str(opts.target_bed)),
                ("reference_fasta", _toml_str(opts.reference_fasta)),
            ],
        ),
        (
            "metrics",
            [("address", _toml_str(opts.metrics_address)), ("port", str(int(opts.metrics_port)))],
        ),
        (
            "logging",
            [
                ("level", _toml_str(opts.log_level)),
                ("cloudwatch_group", _toml_str(storage["ControllerLogGroup"])),
                ("job_log_group", _toml_str(storage["JobLogGroup"])),
            ],
        ),
        ("state", [("ledger_path", _toml_str(opts.ledger_path))]),
        # Both queues schedule by fair share: every SubmitJob must then name a shareIdentifier, which
        # the controller sends only with the policy configured. Projects and weights are the operator's
        # ([[fair_share.project]] in a config drop-in or by hand).
        ("fair_share", [("scheduling_policy_arn", _toml_str(batch["SchedulingPolicyArn"]))]),
    ]
    lines = [
        f"# alignbatch controller configuration rendered from stacks {storage_stack!r} and {batch_stack!r}",
        "# by deploy/render_config.py. Tiers are the controller's defaults; add [[tiers]] to change.",
    ]
    for name, items in sections:
        lines.append("")
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {value}" for key, value in items)
    return "\n".join(lines) + "\n"


def stack_outputs(client: object, stack: str) -> dict[str, str]:
    """OutputKey -> OutputValue of one stack (raises MissingOutput when the stack does not exist)."""
    from botocore.exceptions import ClientError

    try:
        stacks = client.describe_stacks(StackName=stack)["Stacks"]  # type: ignore[attr-defined]
    except ClientError as exc:
        if "does not exist" in str(exc):
            raise MissingOutput(
                f"stack {stack!r} does not exist; deploy it first (deploy/README.md)"
            ) from None
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stack-prefix", default="alignbatch", help="stacks are PREFIX-storage, PREFIX-batch"
    )
    parser.add_argument("--storage-stack", help="storage stack name (default PREFIX-storage)")
    parser.add_argument("--batch-stack", help="Batch stack name (default PREFIX-batch)")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION / the AWS config)")
    parser.add_argument("--on-demand", action="store_true", help="submit to the On-Demand-only job queue")
    parser.add_argument("--metrics-address", default="127.0.0.1")
    parser.add_argument("--metrics-port", type=int, default=9464)
    parser.add_argument("--ledger-path", default="/var/lib/alignbatch/state.db")
    parser.add_argument(
        "--log-level", type=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR"), default="INFO"
    )
    parser.add_argument("--target-bed", default="", help="s3:// URI of the default target BED")
    parser.add_argument("--reference-fasta", default="", help="s3:// URI of the reference FASTA (for CRAM)")
    parser.add_argument(
        "--state-queue-url",
        default="",
        help="the controller stack's JobStateQueueUrl: apply Batch job state events as they arrive",
    )
    parser.add_argument(
        "--deployment",
        help="the alignbatch:deployment tag of every job: the controller stack's name (default PREFIX)",
    )
    args = parser.parse_args(argv)

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.session.Session(region_name=args.region)
    region = args.region or session.region_name
    if not region:
        print("render_config: no AWS region; pass --region or set AWS_REGION", file=sys.stderr)
        return EX_USAGE
    storage_stack = args.storage_stack or f"{args.stack_prefix}-storage"
    batch_stack = args.batch_stack or f"{args.stack_prefix}-batch"
    client = session.client("cloudformation")
    opts = RenderOptions(
        region=region,
        on_demand=args.on_demand,
        metrics_address=args.metrics_address,
        metrics_port=args.metrics_port,
        ledger_path=args.ledger_path,
        log_level=args.log_level,
        target_bed=args.target_bed,
        reference_fasta=args.reference_fasta,
        state_queue_url=args.state_queue_url,
        deployment=args.deployment or args.stack_prefix,
    )
    try:
        text = render(
            stack_outputs(client, storage_stack),
            stack_outputs(client, batch_stack),
            opts,
            storage_stack=storage_stack,
            batch_stack=batch_stack,
        )
    except MissingOutput as exc:
        print(f"render_config: {exc}", file=sys.stderr)
        return EX_NOINPUT
    except (BotoCoreError, ClientError) as exc:
        print(
            f"render_config: cannot read the stack outputs: {type(exc).__name__}: {exc} "
            "(check AWS credentials, region and network)",
            file=sys.stderr,
        )
        return EX_TEMPFAIL
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
