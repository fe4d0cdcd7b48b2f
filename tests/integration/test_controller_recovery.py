"""Issue #14 on the moto server: a controller host lost with its ledger. The next controller restores the
ledger's backup from the results bucket, or, with none, rebuilds it from rows/ and adopts the jobs it
finds in Batch (ListJobs by our names, DescribeJobs for commands and tags) without submitting them again."""

from __future__ import annotations

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


def make_controller(env: AwsEnv, tmp_path: Path) -> Any:
    cfg_path = tmp_path / "controller.toml"
    cfg_path.write_text(env.config_toml(tmp_path / "state.db"))
    return build_controller(load_config(cfg_path), metrics=Metrics(), once=True)


def drain(ctl: Any, rounds: int = 6) -> None:
    empty = 0
    while empty < 2 and rounds > 0:
        if ctl.poll().received == 0:
            empty += 1
        ctl.submit_ready()
        rounds -= 1


def lose_the_host(ctl: Any, tmp_path: Path) -> None:
    ctl.ledger.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp_path / 'state.db'}{suffix}").unlink(missing_ok=True)


def first_controller(env: AwsEnv, tmp_path: Path, data_dir: Path) -> tuple[Any, dict[str, str]]:
    s3 = env.client("s3")
    for key in ("incoming/a.bam", "incoming/deep/b.bam"):
        s3.put_object(Bucket=env.inbox_bucket, Key=key, Body=(data_dir / "i_edge.bam").read_bytes())
    drain_notifications(env, 3)
    ctl = make_controller(env, tmp_path)
    drain(ctl)
    ids = {
        f"{r.key}:{j.step}": j.job_id for r in ctl.ledger.runs() for j in ctl.ledger.jobs_for_run(r.run_id)
    }
    assert len(ids) == 6 and all(ids.values())
    return ctl, ids


def job_ids(ctl: Any) -> dict[str, str]:
    return {
        f"{r.key}:{j.step}": j.job_id for r in ctl.ledger.runs() for j in ctl.ledger.jobs_for_run(r.run_id)
    }


def count_submits(ctl: Any) -> list[str]:
    sent: list[str] = []
    ctl.executor.client.meta.events.register(
        "provide-client-params.batch.SubmitJob", lambda params, **_: sent.append(params["jobName"])
    )
    return sent


def test_without_a_backup_jobs_in_batch_are_adopted_not_resubmitted(
    env: AwsEnv, tmp_path: Path, data_dir: Path
) -> None:
    old, ids = first_controller(env, tmp_path, data_dir)
    lose_the_host(old, tmp_path)

    ctl = make_controller(env, tmp_path)  # no ledger, no backup: rebuilt from Batch
    sent = count_submits(ctl)
    assert job_ids(ctl) == ids
    assert ctl.submit_ready() == 0 and sent == []
    assert {r.state for r in ctl.ledger.runs()} == {"active"}


def test_the_latest_backup_is_restored_on_start(env: AwsEnv, tmp_path: Path, data_dir: Path) -> None:
    old, ids = first_controller(env, tmp_path, data_dir)
    assert old.backup_ledger() > 0
    head = env.client("s3").head_object(Bucket=env.results_bucket, Key="alignbatch/ledger/backup.sqlite.gz")
    assert head["ServerSideEncryption"] in ("AES256", "aws:kms")
    lose_the_host(old, tmp_path)

    ctl = make_controller(env, tmp_path)
    sent = count_submits(ctl)
    assert job_ids(ctl) == ids
    assert ctl.submit_ready() == 0 and sent == []


def test_runs_committed_but_not_submitted_when_the_ledger_was_lost_are_planned_from_the_inbox(
    env: AwsEnv, tmp_path: Path, data_dir: Path
) -> None:
    # The first controller commits both runs (their messages are deleted) and dies before submitting
    # anything: neither rows/ nor Batch knows them; only the inbox listing does.
    s3 = env.client("s3")
    for key in ("incoming/a.bam", "incoming/deep/b.bam"):
        s3.put_object(Bucket=env.inbox_bucket, Key=key, Body=(data_dir / "i_edge.bam").read_bytes())
    drain_notifications(env, 3)
    ctl = make_controller(env, tmp_path)
    while ctl.poll().received:
        pass
    assert len(ctl.ledger.runs()) == 2 and not any(
        j.job_id for r in ctl.ledger.runs() for j in ctl.ledger.jobs_for_run(r.run_id)
    )
    lose_the_host(ctl, tmp_path)
    again = make_controller(env, tmp_path)
    try:
        assert sorted((r.key, r.state) for r in again.ledger.runs()) == [
            ("incoming/a.bam", "active"), ("incoming/deep/b.bam", "active"),
        ]  # fmt: skip
        again.submit_ready()
        assert all(j.job_id for r in again.ledger.runs() for j in again.ledger.jobs_for_run(r.run_id))
        # A third start (ledger lost again, jobs now in Batch) adopts them: the listing adds nothing.
        submitted = sorted(job_ids(again).values())
        lose_the_host(again, tmp_path)
        third = make_controller(env, tmp_path)
        assert len(third.ledger.runs()) == 2
        assert sorted(job_ids(third).values()) == submitted
        third.executor.close(wait=False)
    finally:
        again.executor.close(wait=False)


def test_array_children_are_adopted_from_their_manifest_not_resubmitted(
    env: AwsEnv, tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#18: a ledger rebuilt without a backup finds our array jobs by name and each child's run in the
    array's manifest, so a backfill that went out as arrays is not submitted again."""
    monkeypatch.setenv("ALIGNBATCH_BATCH_ARRAY_MIN_RUNS", "3")
    s3 = env.client("s3")
    for i in range(4):
        s3.put_object(
            Bucket=env.inbox_bucket, Key=f"incoming/arr/s{i}.bam", Body=(data_dir / "i_edge.bam").read_bytes()
        )
    drain_notifications(env, 5)
    old = make_controller(env, tmp_path)
    while old.poll().received:
        pass
    assert old.submit_ready() == 12
    ids = job_ids(old)
    assert all(":" in v for v in ids.values())  # children of three arrays
    lose_the_host(old, tmp_path)

    ctl = make_controller(env, tmp_path)
    sent = count_submits(ctl)
    assert job_ids(ctl) == ids
    assert ctl.submit_ready() == 0 and sent == []
