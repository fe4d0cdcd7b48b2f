"""Scenario 8 (#14): the controller host loses its ledger in the middle of a burst. Once with no backup at
all (the ledger is rebuilt from rows/, the jobs Batch still knows and the inbox listing), once with an
older backup restored (then merged the same way). After the restart every object has exactly one
successful run, Batch holds no duplicate job and the results table has every row."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.pipeline import Figures, Pipeline
from tests.support.workload import drop_bams


def _lose_ledger(pipe: Pipeline) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{pipe.ledger}{suffix}").unlink(missing_ok=True)


def _backup_key(pipe: Pipeline) -> str:
    return f"{pipe.results_prefix}ledger/backup.sqlite.gz"


def _wait_runs(pipe: Pipeline, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(pipe.runs()) < n:
        time.sleep(0.2)


def _ledger_lost_mid_burst(
    pipe: Pipeline, figures: Figures, data_dir: Path, objects: int, *, backup: bool
) -> None:
    pipe.controller.env["ALIGNBATCH_QUEUE_VISIBILITY_TIMEOUT"] = "30"
    pipe.controller.env["ALIGNBATCH_STATE_BACKUP_SECONDS"] = "2" if backup else "0"
    pipe.controller.start().wait_ready()
    began = time.monotonic()
    keys = drop_bams(pipe, data_dir, objects, prefix="lost")
    figures.objects_dropped = len(keys)
    _wait_runs(pipe, max(2, objects // 3))
    if backup:  # a backup taken mid-burst, then more work before the loss: the backup is behind
        deadline = time.monotonic() + 30
        while pipe.get_result(_backup_key(pipe)) is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert pipe.get_result(_backup_key(pipe)) is not None, "no ledger backup was written"
        time.sleep(1.5)
    pipe.controller.kill()
    figures.kills = pipe.controller.kills
    _lose_ledger(pipe)
    if not backup:
        pipe.mb.client("s3").delete_object(Bucket=pipe.results_bucket, Key=_backup_key(pipe))
    pipe.controller.start().wait_ready()
    pipe.wait_settled(keys, timeout=600 if objects > 50 else 240)
    figures.drain_seconds = time.monotonic() - began
    figures.duplicate_jobs = len(pipe.duplicate_batch_jobs())
    pipe.assert_exactly_once(keys)
    assert pipe.duplicate_batch_jobs() == {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(pipe.results_table()) < len(keys):
        time.sleep(1)
    table = pipe.results_table()
    assert len(table) == len(keys), f"results table has {len(table)} rows for {len(keys)} objects"


@pytest.mark.parametrize("backup", [False, True], ids=["deleted", "backup-restored"])
def test_ledger_lost_in_a_burst_of_16(
    pipeline: Pipeline, figures: Figures, data_dir: Path, backup: bool
) -> None:
    _ledger_lost_mid_burst(pipeline, figures, data_dir, 16, backup=backup)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("backup", [False, True], ids=["deleted", "backup-restored"])
def test_ledger_lost_in_a_burst_of_200(
    pipeline: Pipeline, figures: Figures, data_dir: Path, backup: bool
) -> None:
    pipeline.mb.configure_jobs(max_concurrent=6)
    _ledger_lost_mid_burst(pipeline, figures, data_dir, 200, backup=backup)
