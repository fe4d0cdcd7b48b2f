"""`{job_id:STEP}` inside an object key: the text is part of the name, never a placeholder.

Commands used to be strings in which `{job_id:summary}` was replaced by the upstream job's id at submit
time, so a key holding that text named another object (the id in its place). The typed command
(core/command.py: an upstream id is a JobRef part) passes the key through verbatim; these tests pin it on
both paths: local mode end to end (the engine reads exactly that file, the row names exactly that key) and
Batch on moto (every submitted command names exactly that object).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from controller.config import load_config
from controller.daemon import build_controller
from controller.metrics import Metrics
from tests.support.aws_env import create_aws_env, drain_notifications

BIN = Path(sys.executable).parent
TRAPS = ("victim{job_id:summary}.bam", "{job_id:alignstats}.bam", "x{job_id:index}{}.bam")


def test_local_mode_reads_and_names_exactly_the_object(tmp_path: Path, data_dir: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(data_dir / "i_edge.bam", inbox / TRAPS[0])
    shutil.copy(data_dir / "h_source.bam", inbox / TRAPS[1])  # other bytes: another object's report shows
    shutil.copy(data_dir / "i_edge.bam", inbox / TRAPS[2])
    # What the old string substitution made of TRAPS[0] (the summary id is blank when the index runs).
    shutil.copy(data_dir / "h_source.bam", inbox / "victim.bam")
    past = time.time() - 10
    for p in inbox.iterdir():
        os.utime(p, (past, past))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    env.pop("ALIGNBATCH_ALIGNSTATS_BIN", None)
    out = subprocess.run(
        [str(BIN / "alignbatch-controller"), "run", "--local", str(tmp_path), "--once", "--metrics-port", "0",
         "--max-seconds", "240"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "4 succeeded, 0 failed" in out.stdout, out.stdout[-3000:]
    rows = {
        r["inbox_key"]: r
        for r in map(json.loads, (tmp_path / "results" / "table" / "results.jsonl").read_text().splitlines())
    }
    assert set(rows) == {*TRAPS, "victim.bam"}
    for key, row in rows.items():
        report = tmp_path / "results" / "reports" / f"{key}.alignstats.json"
        assert row["report_uri"] == str(report) and row["input_uri"] == str(inbox / key)
        assert row["sample"] == key[: -len(".bam")]
        assert json.loads(report.read_text())["InputFileName"] == str(inbox / key)
        assert row["job_id_alignstats"] and "{" not in row["job_id_alignstats"]
    golden = json.loads((data_dir / "golden" / "i_edge_bam__C.json").read_text())
    assert rows[TRAPS[0]]["TotalRecords"] == golden["TotalRecords"]  # its own bytes, not victim.bam's
    assert rows["victim.bam"]["TotalRecords"] != golden["TotalRecords"]
    assert rows[TRAPS[1]]["TotalRecords"] != golden["TotalRecords"]  # h_source's own count, not i_edge's


def test_batch_commands_name_exactly_the_object(aws: str, tmp_path: Path, data_dir: Path) -> None:
    env = create_aws_env(aws)
    s3 = env.client("s3")
    key = "incoming/victim{job_id:summary}.bam"
    s3.put_object(Bucket=env.inbox_bucket, Key=key, Body=(data_dir / "i_edge.bam").read_bytes())
    drain_notifications(env, 2)
    cfg_path = tmp_path / "controller.toml"
    cfg_path.write_text(env.config_toml(tmp_path / "state.db"))
    ctl = build_controller(load_config(cfg_path), metrics=Metrics(), once=True)
    while ctl.poll().received:
        pass
    ctl.submit_ready()
    [run] = ctl.ledger.runs()
    assert run.key == key and run.state == "active"
    jobs = {j.step: j for j in ctl.ledger.jobs_for_run(run.run_id)}
    described = {
        d["jobId"]: d
        for d in env.client("batch").describe_jobs(jobs=[j.job_id for j in jobs.values()])["jobs"]
    }
    commands = {step: described[j.job_id]["container"]["command"] for step, j in jobs.items()}
    uri = f"s3://{env.inbox_bucket}/{key}?etag={run.etag}"  # pinned to the event's ETag (#14)
    assert commands["index"][commands["index"].index("-i") + 1] == uri
    assert commands["alignstats"][commands["alignstats"].index("-i") + 1] == uri
    summary = commands["summary"]
    assert f"input_uri={uri}" in summary and "inbox_key=victim{job_id:summary}.bam" in summary
    assert "sample=victim{job_id:summary}" in summary
    assert f"job_id_alignstats={jobs['alignstats'].job_id}" in summary
    # No id of another job was spliced into any argument that came from the key.
    for step, command in commands.items():
        for arg in command:
            for other in jobs.values():
                assert other.job_id not in arg or arg.startswith("job_id_"), (step, arg)
