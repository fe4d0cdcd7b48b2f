"""Operator commands on a local ledger: submit (backfill), cancel, retry, status, runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
CONTROLLER = str(BIN / "alignbatch-controller")


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    full = dict(os.environ)
    full["PATH"] = f"{BIN}:{full.get('PATH', '')}"
    full.pop("ALIGNBATCH_ALIGNSTATS_BIN", None)
    full.update(env or {})
    return subprocess.run([CONTROLLER, *args], capture_output=True, text=True, timeout=timeout, env=full)


def test_backfill_cancel_retry(tmp_path: Path, data_dir: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("one", "two"):
        shutil.copy(data_dir / "i_edge.bam", inbox / f"{name}.bam")
        shutil.copy(data_dir / "i_edge.bam.bai", inbox / f"{name}.bam.bai")
    past = time.time() - 10
    for p in inbox.iterdir():
        os.utime(p, (past, past))
    local = ["--local", str(tmp_path)]

    out = cli("submit", *local, str(inbox), "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "4 objects: 2 accepted, 2 index_recorded" in out.stdout
    again = cli("submit", *local, str(inbox), "--no-progress")
    assert "2 duplicate, 2 index_recorded" in again.stdout
    outside = cli("submit", *local, str(tmp_path / "elsewhere"))
    assert outside.returncode == 2 and "must be under the inbox" in outside.stderr

    runs = json.loads(cli("runs", *local, "--json").stdout)
    assert len(runs) == 2 and all(r["state"] == "active" for r in runs)
    one = next(r for r in runs if r["key"] == "one.bam")
    assert [j["step"] for j in one["jobs"]] == ["alignstats", "summary"]  # index found next to the BAM

    cancel = cli("cancel", *local, one["run_id"])
    assert cancel.returncode == 0 and "cancelled" in cancel.stdout
    assert cli("cancel", *local, one["run_id"]).returncode == 1
    assert cli("retry", *local, one["run_id"]).returncode == 0

    # A broken alignstats binary: both runs fail with the exit code and the job log in the ledger.
    broken = tmp_path / "broken-alignstats"
    broken.write_text("#!/bin/sh\necho 'simulated engine crash' >&2\nexit 3\n")
    broken.chmod(0o755)
    run = cli("run", *local, "--once", "--metrics-port", "0", env={"ALIGNBATCH_ALIGNSTATS_BIN": str(broken)})
    assert run.returncode == 0, run.stderr
    assert "0 succeeded, 2 failed" in run.stdout
    status = cli("status", *local)
    assert "failed=2" in status.stdout and "alignstats failed" in status.stdout and "log: " in status.stdout
    failed = json.loads(cli("runs", *local, "--state", "failed", "--json").stdout)
    job = next(j for j in failed[0]["jobs"] if j["step"] == "alignstats")
    assert job["exit_code"] == 3 and Path(job["log_stream"]).exists()
    assert json.loads(cli("status", *local, "--json").stdout)["recent_failures"][0]["log_stream"]

    retry = cli("retry", *local, "--all-failed")
    assert retry.returncode == 0 and retry.stdout.count("will run again: alignstats, summary") == 2
    run = cli("run", *local, "--once", "--metrics-port", "0", "--fail-on-error")
    assert run.returncode == 0, run.stdout[-2000:]
    done = json.loads(cli("runs", *local, "--json").stdout)
    assert {r["state"] for r in done} == {"succeeded"}
    assert sorted(r["attempt"] for r in done) == [2, 3]  # "one" was also cancelled and retried once
    assert all(j["name"].endswith(f"-a{r['attempt']}") for r in done for j in r["jobs"])
    assert cli("retry", *local, done[0]["run_id"]).returncode == 1  # succeeded runs are not retried


def test_usage_and_config_errors(tmp_path: Path) -> None:
    assert cli("run").returncode == 78
    bad = tmp_path / "c.toml"
    bad.write_text("[queue]\nurl = 3\n")
    out = cli("run", "--config", str(bad))
    assert out.returncode == 78 and "url" in out.stderr and "Traceback" not in out.stderr
    out = cli("check", "--config", str(tmp_path / "missing.toml"))
    assert out.returncode == 78 and "not found" in out.stderr
    out = cli("status", "--local", str(tmp_path / "empty"))
    assert out.returncode == 78 and "no ledger" in out.stderr


def test_an_unusable_aws_config_is_a_config_error_not_a_transient_one(tmp_path: Path) -> None:
    # A bad config file or profile cannot fix itself: 78 (no retry), not 75 (systemd restarts forever).
    toml = tmp_path / "aws.toml"
    toml.write_text(
        '[aws]\nregion = "us-east-1"\n'
        '[queue]\nurl = "https://sqs.us-east-1.amazonaws.com/123456789012/inbox"\n'
        '[storage]\ninbox_bucket = "inbox"\nresults_bucket = "results"\n'
        '[batch]\njob_queue = "q"\njob_definition_index = "a"\njob_definition_alignstats = "b"\n'
        'job_definition_summary = "c"\n'
        f'[state]\nledger_path = "{tmp_path / "state.db"}"\n'
    )
    bad = tmp_path / "aws-config"
    bad.write_text("not an ini file\n")
    out = cli("run", "--config", str(toml), env={"AWS_CONFIG_FILE": str(bad)}, timeout=60)
    assert out.returncode == 78, out.stderr
    assert "AWS configuration" in out.stderr and str(bad) in out.stderr and "Traceback" not in out.stderr
