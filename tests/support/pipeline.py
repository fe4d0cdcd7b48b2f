"""The production path, stood up in moto: deploy stacks → inbox notification → rendered config → controller.

`Pipeline` is what a scenario drives: drop objects into the inbox, kill/restart the controller, wait
for the results, and check the one invariant every scenario shares — each dropped object ended with
exactly one run (succeeded, or one clearly recorded failure) and Batch holds no duplicate job for a step.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.harness import (
    FAKE_ENV,
    ROOT,
    Controller,
    HarnessTimeout,
    MotoBatch,
    list_all_jobs,
    metric_sum,
    read_ledger,
    wait_for,
)
from tests.support.stacks import batch_service_role_arn

TEMPLATES = ROOT / "deploy" / "cloudformation"
STACK_ORDER = ("network", "storage", "batch", "controller")
RENDER_CONFIG = ROOT / "deploy" / "render_config.py"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- stacks ----------------------------------------------------------------------------------------
def stack_parameters(layer: str, max_receive_count: int) -> list[dict[str, str]]:
    params: dict[str, str] = {}
    if layer == "storage":
        # storage.yaml's default is 5; the poison-message scenario lowers it to reach the DLQ quickly.
        params["MaxReceiveCount"] = str(max_receive_count)
    if layer == "batch":
        # moto passes a CommaDelimitedList *default* through unsplit (then iterates its characters);
        # an explicit value is split. Same list as the template's default, minus nothing that matters.
        params["InstanceTypes"] = "m6i,m6a,r6i,r6a,c6i"
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()]


def deploy_stacks(mb: MotoBatch, *, max_receive_count: int = 5) -> dict[str, dict[str, str]]:
    """Create alignbatch-{network,storage,batch,controller} in moto's CloudFormation, in order."""
    cfn = mb.client("cloudformation")
    outputs: dict[str, dict[str, str]] = {}
    for layer in STACK_ORDER:
        name = f"alignbatch-{layer}"
        parameters = stack_parameters(layer, max_receive_count)
        if layer == "batch":
            # batch.yaml takes only Batch's service-linked role, which moto must be given (see stacks.py).
            role = batch_service_role_arn(mb.client("iam"))
            parameters.append({"ParameterKey": "BatchServiceRoleArn", "ParameterValue": role})
        cfn.create_stack(
            StackName=name,
            TemplateBody=(TEMPLATES / f"{layer}.yaml").read_text(),
            Parameters=parameters,
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise AssertionError(f"stack {name}: {stack['StackStatus']} {stack.get('StackStatusReason')}")
        outputs[layer] = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return outputs


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation short-form tags as {'!Tag': value}."""


def _cfn_tag(loader: yaml.Loader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {f"!{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def inbox_notification(storage_outputs: dict[str, str]) -> dict[str, Any]:
    """The inbox bucket's NotificationConfiguration from storage.yaml, resolved against the outputs.

    moto ignores NotificationConfiguration in templates, so the e2e suite applies the template's own
    filters through the API (same events, same prefix/suffix rules, the stack's queue).
    """
    template = yaml.load((TEMPLATES / "storage.yaml").read_text(), Loader=_CfnLoader)
    bucket = next(
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::S3::Bucket" and "NotificationConfiguration" in r.get("Properties", {})
    )
    config = bucket["Properties"]["NotificationConfiguration"]

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((tag, inner),) = value.items()
            if tag == "!Ref" and inner == "InboxPrefix":
                return storage_outputs["InboxPrefix"]
            if tag == "!GetAtt":
                return storage_outputs["InboxQueueArn"]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    resolved = resolve(config)
    return {
        "QueueConfigurations": [
            {
                "QueueArn": q["Queue"],
                "Events": [q["Event"]],
                "Filter": {"Key": {"FilterRules": q["Filter"]["S3Key"]["Rules"]}},
            }
            for q in resolved.get("QueueConfigurations", [])
        ]
    }


def render_config(mb: MotoBatch, path: Path, *, metrics_port: int, ledger: Path) -> Path:
    """deploy/render_config.py, run as the controller host's user data runs it, against moto."""
    env = {**os.environ, **FAKE_ENV, "AWS_ENDPOINT_URL": mb.url()}
    text = subprocess.run(
        [
            sys.executable,
            str(RENDER_CONFIG),
            "--stack-prefix",
            "alignbatch",
            "--metrics-port",
            str(metrics_port),
            "--ledger-path",
            str(ledger),
            "--log-level",
            "INFO",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    path.write_text(text)
    return path


# -- the pipeline ----------------------------------------------------------------------------------
@dataclass
class Figures:
    """What a scenario survived, for the summary line and the closing note."""

    scenario: str
    objects_dropped: int = 0
    kills: int = 0
    sigterms: int = 0
    duplicate_deliveries: int = 0
    duplicate_jobs: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    throttled_calls_seen: float = 0.0
    job_retries: int = 0
    drain_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def add_faults(self, kinds: dict[str, int]) -> None:
        for kind, n in kinds.items():
            self.faults[kind] = self.faults.get(kind, 0) + n

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary_line(self) -> str:
        faults = ",".join(f"{k}={v}" for k, v in sorted(self.faults.items())) or "none"
        extra = " ".join(f"{k}={v}" for k, v in sorted(self.extra.items()))
        line = (
            f"{self.scenario}: objects={self.objects_dropped} kills={self.kills} "
            f"sigterms={self.sigterms} dup_deliveries={self.duplicate_deliveries} "
            f"dup_jobs={self.duplicate_jobs} faults[{faults}] "
            f"throttled_seen={self.throttled_calls_seen:.0f} job_retries={self.job_retries} "
            f"drain={self.drain_seconds:.1f}s {extra}"
        )
        return line.rstrip()

    @classmethod
    def total(cls, figs: list[Figures]) -> Figures:
        out = cls(scenario="all")
        for f in figs:
            out.objects_dropped += f.objects_dropped
            out.kills += f.kills
            out.sigterms += f.sigterms
            out.duplicate_deliveries += f.duplicate_deliveries
            out.duplicate_jobs += f.duplicate_jobs
            out.add_faults(f.faults)
            out.throttled_calls_seen += f.throttled_calls_seen
            out.job_retries += f.job_retries
            out.drain_seconds += f.drain_seconds
        return out


@dataclass
class Pipeline:
    mb: MotoBatch
    workdir: Path
    outputs: dict[str, dict[str, str]]
    controller: Controller
    ledger: Path
    env_overrides: dict[str, str]

    # -- set-up --------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        mb: MotoBatch,
        workdir: Path,
        *,
        max_receive_count: int = 5,
        overrides: dict[str, str] | None = None,
    ) -> Pipeline:
        outputs = deploy_stacks(mb, max_receive_count=max_receive_count)
        mb.client("s3").put_bucket_notification_configuration(
            Bucket=outputs["storage"]["InboxBucket"],
            NotificationConfiguration=inbox_notification(outputs["storage"]),
        )
        metrics_port = free_port()
        ledger = workdir / "state" / "state.db"
        ledger.parent.mkdir(parents=True, exist_ok=True)
        config = render_config(mb, workdir / "controller.toml", metrics_port=metrics_port, ledger=ledger)
        env_overrides = {
            # Test timing only; the rendered file stays as deployed. Short long-polls so SIGTERM and
            # restarts are quick, a fast reconcile so the suite fits CI.
            "ALIGNBATCH_QUEUE_WAIT_SECONDS": "1",
            "ALIGNBATCH_BATCH_RECONCILE_SECONDS": "1",
            "ALIGNBATCH_BATCH_SUBMIT_RATE_PER_SECOND": "20",
            **(overrides or {}),
        }
        env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            # A git worktree run against a shared virtualenv: the controller runs the worktree's code.
            **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
            **FAKE_ENV,
            "AWS_ENDPOINT_URL": mb.url("controller"),
            **env_overrides,
        }
        controller = Controller(
            config=config, workdir=workdir / "controller", env=env, metrics_port=metrics_port
        )
        return cls(
            mb=mb,
            workdir=workdir,
            outputs=outputs,
            controller=controller,
            ledger=ledger,
            env_overrides=env_overrides,
        )

    @property
    def inbox_bucket(self) -> str:
        return self.outputs["storage"]["InboxBucket"]

    @property
    def inbox_prefix(self) -> str:
        return self.outputs["storage"]["InboxPrefix"]

    @property
    def results_bucket(self) -> str:
        return self.outputs["storage"]["ResultsBucket"]

    @property
    def results_prefix(self) -> str:
        return self.outputs["storage"]["ResultsPrefix"]

    @property
    def job_queue(self) -> str:
        return self.outputs["batch"]["JobQueue"]

    # -- inputs --------------------------------------------------------------------------------
    def put(self, rel_key: str, data: bytes) -> str:
        """Drop one object under the inbox prefix; returns the full key."""
        key = self.inbox_prefix + rel_key
        self.mb.client("s3").put_object(Bucket=self.inbox_bucket, Key=key, Body=data)
        return key

    def put_many(self, objects: dict[str, bytes]) -> list[str]:
        s3 = self.mb.client("s3")
        keys = []
        for rel_key, data in objects.items():
            key = self.inbox_prefix + rel_key
            s3.put_object(Bucket=self.inbox_bucket, Key=key, Body=data)
            keys.append(key)
        return keys

    # -- the controller's CLI (operator commands) ---------------------------------------------------
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "alignbatch-controller"), *args],
            env=self.controller.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
            cwd=self.controller.workdir,
        )

    # -- observations --------------------------------------------------------------------------
    def runs(self) -> list[dict[str, Any]]:
        if not self.ledger.exists():
            return []
        return read_ledger(self.ledger, "SELECT * FROM runs")

    def jobs(self) -> list[dict[str, Any]]:
        if not self.ledger.exists():
            return []
        return read_ledger(self.ledger, "SELECT * FROM jobs")

    def runs_by_key(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for run in self.runs():
            out.setdefault(run["key"], []).append(run)
        return out

    def wait_settled(
        self,
        keys: list[str],
        timeout: float,
        *,
        states: tuple[str, ...] = ("succeeded", "failed", "rejected"),
    ) -> float:
        """Wait until every key has a run in a final state; returns the seconds it took."""
        began = time.monotonic()

        def settled() -> bool:
            by_key = self.runs_by_key()
            return all(any(r["state"] in states for r in by_key.get(k, [])) for k in keys)

        try:
            wait_for(f"{len(keys)} objects to settle", settled, timeout, 1.0)
        except AssertionError:
            by_key = self.runs_by_key()
            pending = {
                k: [(r["run_id"], r["state"]) for r in by_key.get(k, [])]
                for k in keys
                if not any(r["state"] in states for r in by_key.get(k, []))
            }
            raise AssertionError(
                f"{len(pending)} of {len(keys)} objects not settled after {timeout}s: "
                f"{dict(list(pending.items())[:5])}\ncontroller log tail:\n{self.controller.log_tail(30)}"
            ) from None
        return time.monotonic() - began

    def batch_jobs(self) -> list[dict[str, Any]]:
        batch = self.mb.client("batch")
        jobs: list[dict[str, Any]] = []
        for queue in {self.job_queue, self.outputs["batch"]["JobQueueOnDemand"]}:
            jobs += list_all_jobs(batch, queue)
        return jobs

    def duplicate_batch_jobs(self) -> dict[str, int]:
        """Job names submitted to Batch more than once (names are deterministic per run, step, attempt)."""
        # moto lists an array job's children (`<parent>:<i>`, the parent's name) with it; AWS does not.
        counts = Counter(j["jobName"] for j in self.batch_jobs() if ":" not in j["jobId"])
        return {name: n for name, n in counts.items() if n > 1}

    def duplicate_process_runs(self) -> dict[str, int]:
        """Batch job attempts whose command was started as a process more than once."""
        counts = Counter(f"{r['job_id']}#{r['attempt']}" for r in self.mb.runs())
        return {job: n for job, n in counts.items() if n > 1}

    def report_key(self, key: str) -> str:
        rel = key[len(self.inbox_prefix) :] if key.startswith(self.inbox_prefix) else key
        return f"{self.results_prefix}reports/{rel}.alignstats.json"

    def get_result(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return bytes(self.mb.client("s3").get_object(Bucket=self.results_bucket, Key=key)["Body"].read())
        except ClientError:
            return None

    def results_table(self) -> list[dict[str, Any]]:
        raw = self.get_result(f"{self.results_prefix}table/results.jsonl")
        return [json.loads(line) for line in (raw or b"").decode().splitlines() if line.strip()]

    def assert_exactly_once(self, succeeded: list[str], failed: list[str] = ()) -> None:  # type: ignore[assignment]
        """The shared invariant: one run per object, in the expected final state; no duplicate job."""
        by_key = self.runs_by_key()
        problems: list[str] = []
        for key in succeeded:
            runs = by_key.get(key, [])
            if len(runs) != 1 or runs[0]["state"] != "succeeded":
                problems.append(f"{key!r}: runs {[(r['run_id'], r['state'], r['reason']) for r in runs]}")
                continue
            if self.get_result(self.report_key(key)) is None:
                problems.append(f"{key!r}: no report at {self.report_key(key)}")
            if runs[0]["row_uri"] and self.get_result(runs[0]["row_uri"].split("/", 3)[3]) is None:
                problems.append(f"{key!r}: no summary row at {runs[0]['row_uri']}")
        for key in failed:
            runs = by_key.get(key, [])
            if len(runs) != 1 or runs[0]["state"] not in ("failed", "rejected") or not runs[0]["reason"]:
                problems.append(
                    f"{key!r}: expected one failed run with a reason, got "
                    f"{[(r['run_id'], r['state'], r['reason']) for r in runs]}"
                )
        dup_jobs = self.duplicate_batch_jobs()
        if dup_jobs:
            problems.append(f"duplicate Batch jobs: {dup_jobs}")
        dup_procs = self.duplicate_process_runs()
        if dup_procs:
            problems.append(f"a Batch job's process ran twice: {dup_procs}")
        # Every job the ledger knows is the one Batch ran: no orphan submission for a known step.
        # (`retry` renames a step's job to the next attempt, so earlier attempts count as known.)
        known = {j["name"].rsplit("-a", 1)[0] for j in self.jobs() if j["job_id"]}
        # An array job (#18) is known by the name its children's rows keep.
        known |= {j["array_name"].rsplit("-a", 1)[0] for j in self.jobs() if j.get("array_name")}
        names = {j["jobName"] for j in self.batch_jobs()}
        orphans = sorted(n for n in names if n.rsplit("-a", 1)[0] not in known)
        if orphans:
            problems.append(f"Batch jobs the ledger does not know: {orphans[:5]} ({len(orphans)})")
        assert not problems, (
            "exactly-once violated:\n  "
            + "\n  ".join(problems)
            + "\nfailed jobs:\n"
            + self.explain_failures()
        )

    def assert_ledger_table_metrics_agree(self) -> None:
        """The three views of the same work agree: ledger runs, the results table and /metrics (only
        meaningful while the controller has not restarted: counters start at zero with the process)."""
        succeeded = [r for r in self.runs() if r["state"] == "succeeded"]
        # The ledger marks a run succeeded mid-pass; the table is written at the end of that reconcile
        # pass (and again on the next one if the PUT failed after botocore's retries), so a reader that
        # polls the ledger can see the table one pass behind. Agreement is required, but eventually.
        try:
            wait_for(
                f"the results table to reach {len(succeeded)} rows",
                lambda: len(self.results_table()) == len(succeeded),
                timeout=30,
            )
        except HarnessTimeout:
            events = [e for e in self.controller.log_events() if str(e.get("event", "")).startswith("table.")]
            raise AssertionError(
                f"results table has {len(self.results_table())} rows, ledger {len(succeeded)} succeeded "
                f"runs; controller table events: {events[-5:]}"
            ) from None
        metrics = self.controller.metrics()
        assert metric_sum(metrics, "alignbatch_runs_total", outcome="succeeded") == len(succeeded)
        assert metric_sum(metrics, "alignbatch_runs_total", outcome="created") == len(self.runs())

    def job_log(self, job_id: str, lines: int = 20) -> list[str]:
        """The tail of a Batch job's CloudWatch Logs stream (`/aws/batch/job`), as moto stored it."""
        batch = self.mb.client("batch")
        jobs = batch.describe_jobs(jobs=[job_id])["jobs"]
        stream = jobs[0].get("container", {}).get("logStreamName") if jobs else None
        if not stream:
            return []
        events = self.mb.client("logs").get_log_events(logGroupName="/aws/batch/job", logStreamName=stream)[
            "events"
        ]
        return [e["message"] for e in events][-lines:]

    def explain_failures(self) -> str:
        """Failed jobs with command, exit code and log tail: the first thing to read when a test fails."""
        out = []
        runs = {r["job_id"]: r for r in self.mb.runs()}
        for job in self.jobs():
            if job["state"] not in ("FAILED", "LOST"):
                continue
            run = runs.get(job["job_id"] or "", {})
            out.append(
                f"{job['name']} {job['state']} exit={job['exit_code']} reason={job['reason']!r}\n"
                f"    command: {run.get('command')}\n    log: "
                + "\n         ".join(self.job_log(job["job_id"]) if job["job_id"] else [])
            )
        return "\n".join(out)
