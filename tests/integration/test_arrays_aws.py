"""Array-job submission on moto (#18): a burst of objects goes out as one SubmitJob per step.

moto's no-docker Batch runs nothing (every job SUCCEEDED at once), which is what this checks: the
requests (arrayProperties, N_TO_N), the manifest in the results bucket, the children's ids in the ledger
and that DescribeJobs knows them. Running children for real is tests/e2e/test_s10_array_backfill.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.config import load_config
from controller.daemon import build_controller
from controller.metrics import Metrics
from tests.support.aws_env import AwsEnv, create_aws_env, drain_notifications


@pytest.fixture()
def env(aws: str) -> AwsEnv:
    return create_aws_env(aws)


def test_a_burst_is_one_array_per_step_whose_children_are_the_runs(
    env: AwsEnv, tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIGNBATCH_BATCH_ARRAY_MIN_RUNS", "5")
    cfg_path = tmp_path / "controller.toml"
    cfg_path.write_text(env.config_toml(tmp_path / "state.db"))
    ctl = build_controller(load_config(cfg_path), metrics=Metrics(), once=True)
    sent: list[dict[str, Any]] = []
    ctl.executor.client.meta.events.register(
        "provide-client-params.batch.SubmitJob", lambda params, **_: sent.append(dict(params))
    )
    s3 = env.client("s3")
    body = (data_dir / "i_edge.bam").read_bytes()
    for i in range(8):
        s3.put_object(Bucket=env.inbox_bucket, Key=f"incoming/burst/s{i}.bam", Body=body)
    drain_notifications(env, 9)
    while ctl.poll().received:  # intake only: the runs wait, as a backlog behind the bucket would
        pass
    assert len(ctl.ledger.runs()) == 8
    assert ctl.submit_ready() == 24
    assert [(p["jobName"].rsplit("-", 1)[-1], p["arrayProperties"]["size"]) for p in sent] == [
        ("index", 8), ("alignstats", 8), ("summary", 8)
    ]  # fmt: skip
    index_id = next(
        j.job_id for j in ctl.ledger.jobs_for_run(ctl.ledger.runs()[0].run_id) if j.step == "index"
    )
    assert sent[1]["dependsOn"] == [{"jobId": index_id.split(":")[0], "type": "N_TO_N"}]
    assert sent[0]["containerOverrides"]["command"][:2] == ["alignbatch-worker", "--array-manifest"]
    manifest_uri = sent[1]["containerOverrides"]["command"][2]
    bucket, key = manifest_uri.removeprefix("s3://").split("/", 1)
    lines = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
    assert len(lines) == 8
    runs = {r.run_id: r for r in ctl.ledger.runs()}
    for i, line in enumerate(lines):
        entry = json.loads(line)
        jobs = {j.step: j for j in ctl.ledger.jobs_for_run(entry["run_id"])}
        assert jobs["alignstats"].array_index == i and jobs["alignstats"].job_id.endswith(f":{i}")
        assert any(runs[entry["run_id"]].key.split("/")[-1] in a for a in entry["argv"])
    # Each child is an ordinary job of its run from here on: DescribeJobs knows it by `<array>:<i>`.
    ctl.reconcile()
    states = {j.state for r in runs for j in ctl.ledger.jobs_for_run(r)}
    assert states <= {"SUCCEEDED", "FAILED", "CANCELLED"}, states
    assert ctl.submit_ready() == 0  # nothing submitted twice
