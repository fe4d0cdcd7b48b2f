"""Local mode end to end on real BAMs: DIR/inbox in, reports + results table out, through the real
`alignbatch-worker` and the built-in alignstats engine; the daemon's metrics endpoint counts the runs and
SIGTERM stops it cleanly."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.moto import free_port

BIN = Path(sys.executable).parent
CONTROLLER = str(BIN / "alignbatch-controller")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env.pop("ALIGNBATCH_ALIGNSTATS_BIN", None)  # the built-in engine, unless a real alignstats is on PATH
    return env


def _seed(inbox: Path, data_dir: Path, *, with_unindexed: bool) -> None:
    (inbox / "batch 1").mkdir(parents=True)
    shutil.copy(data_dir / "i_edge.bam", inbox / "batch 1" / "édge one.bam")
    shutil.copy(data_dir / "i_edge.bam.bai", inbox / "batch 1" / "édge one.bam.bai")
    (inbox / "readme.txt").write_text("not an alignment")
    if with_unindexed:
        shutil.copy(data_dir / "i_edge.bam", inbox / "no_index.bam")
    past = time.time() - 10
    for p in inbox.rglob("*"):
        os.utime(p, (past, past))


def _indexer_available() -> bool:
    try:
        import worker.indexer  # noqa: F401
    except ImportError:
        return False
    return True


def test_run_local_once_end_to_end(tmp_path: Path, data_dir: Path) -> None:
    with_index_step = _indexer_available()
    _seed(tmp_path / "inbox", data_dir, with_unindexed=with_index_step)
    out = subprocess.run(
        [CONTROLLER, "run", "--local", str(tmp_path), "--once", "--metrics-port", "0",
         "--max-seconds", "240"],
        capture_output=True, text=True, timeout=300, env=_env(),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert all({"event", "level", "timestamp"} <= set(e) for e in events)
    expected_runs = 2 if with_index_step else 1
    assert sum(1 for e in events if e["event"] == "run.succeeded") == expected_runs, out.stdout[-3000:]
    assert "alignbatch: inbox drained." in out.stdout
    assert f"{expected_runs} succeeded, 0 failed" in out.stdout

    report = tmp_path / "results" / "reports" / "batch 1" / "édge one.bam.alignstats.json"
    got = json.loads(report.read_text())
    golden = json.loads((data_dir / "golden" / "i_edge_bam__C.json").read_text())
    assert got["InputFileName"] == str(tmp_path / "inbox" / "batch 1" / "édge one.bam")
    assert {k: v for k, v in got.items() if not k.startswith("InputFile")} == {
        k: v for k, v in golden.items() if not k.startswith("InputFile")
    }
    rows = list(csv.DictReader((tmp_path / "results" / "table" / "results.csv").open()))
    assert len(rows) == expected_runs
    row = next(r for r in rows if r["inbox_key"] == "batch 1/édge one.bam")
    assert row["sample"] == "édge one" and row["engine"] in ("alignbatch-alignstats", "alignstats")
    assert row["job_id_alignstats"] and row["job_id_summary"]
    assert int(row["TotalRecords"]) == golden["TotalRecords"]
    jsonl = [
        json.loads(x) for x in (tmp_path / "results" / "table" / "results.jsonl").read_text().splitlines()
    ]
    assert {r["run_id"] for r in jsonl} == {r["run_id"] for r in rows}
    if with_index_step:
        assert (tmp_path / "results" / "indexes" / "no_index.bam.bai").exists()

    # Running again: nothing new (identities already in the ledger), exit 0.
    again = subprocess.run(
        [CONTROLLER, "run", "--local", str(tmp_path), "--once", "--metrics-port", "0"],
        capture_output=True, text=True, timeout=120, env=_env(),
    )  # fmt: skip
    assert again.returncode == 0
    assert not any('"run.created"' in line for line in again.stdout.splitlines())

    status = subprocess.run(
        [CONTROLLER, "status", "--local", str(tmp_path), "--json"], capture_output=True, text=True
    )
    assert json.loads(status.stdout)["runs"]["succeeded"] == expected_runs
    runs = subprocess.run(
        [CONTROLLER, "runs", "--local", str(tmp_path), "--json"], capture_output=True, text=True
    )
    listed = json.loads(runs.stdout)
    assert {r["key"] for r in listed} >= {"batch 1/édge one.bam"}
    assert all(j["job_id"] for r in listed for j in r["jobs"])


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_daemon_metrics_and_sigterm(tmp_path: Path, data_dir: Path) -> None:
    port = free_port()
    # Stand in for systemd: a datagram socket as NOTIFY_SOCKET, a 2 s watchdog.
    notify_path = str(tmp_path / "notify.sock")
    notify_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_sock.bind(notify_path)
    notify_sock.setblocking(False)
    env = {**_env(), "NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "2000000"}
    notes: list[str] = []

    def read_notes() -> None:  # like systemd, keep reading so the datagram queue never fills
        while True:
            try:
                notes.append(notify_sock.recv(4096).decode())
            except BlockingIOError:
                return

    # Files, not pipes: a pipe nobody reads while we poll /metrics could fill up and block the daemon.
    out_path, err_path = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(
            [CONTROLLER, "run", "--local", str(tmp_path), "--metrics-port", str(port)],
            stdout=out, stderr=err, text=True, env=env,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    assert resp.status == 200
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("controller did not start serving /healthz")
                time.sleep(0.2)
        _seed(tmp_path / "inbox", data_dir, with_unindexed=False)
        deadline = time.monotonic() + 120
        metrics: dict[str, float] = {}
        while time.monotonic() < deadline:
            read_notes()
            metrics = _scrape(port)
            if metrics.get('alignbatch_runs_total{outcome="succeeded"}') == 1:
                break
            time.sleep(0.5)
        assert metrics['alignbatch_runs_total{outcome="succeeded"}'] == 1
        assert metrics['alignbatch_events_total{outcome="accepted"}'] == 1
        assert metrics['alignbatch_events_total{outcome="index_recorded"}'] == 1
        assert metrics['alignbatch_events_total{outcome="ignored"}'] == 1
        assert metrics['alignbatch_job_completions_total{outcome="succeeded",step="alignstats"}'] == 1
        assert metrics['alignbatch_job_duration_seconds_count{step="alignstats"}'] == 1
        assert metrics["alignbatch_input_bytes_total"] == (data_dir / "i_edge.bam").stat().st_size
        assert metrics['alignbatch_build_info{version="0.1.0"}'] == 1
        assert metrics["alignbatch_end_to_end_latency_seconds_count"] == 1
        assert _ready(port, seconds=15)  # every loop /readyz watches has succeeded since the start
        # STATUS follows the ledger once a second: wait for the finished run to show before stopping.
        status_deadline = time.monotonic() + 15
        while time.monotonic() < status_deadline:
            read_notes()
            if any(n.startswith("STATUS=") and "succeeded=1" in n for n in notes):
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, err_path.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    logs = [json.loads(x) for x in out_path.read_text().splitlines() if x.startswith("{")]
    assert any(e["event"] == "daemon.stopped" for e in logs)
    read_notes()
    notify_sock.close()
    assert notes[0] == "READY=1" and notes[-1] == "STOPPING=1"
    assert "WATCHDOG=1" in notes
    assert any(n.startswith("STATUS=runs active=") and "succeeded=1" in n for n in notes)


def test_demo_from_an_unactivated_virtualenv(tmp_path: Path) -> None:
    """What `make demo` does: .venv/bin/alignbatch-controller with the venv's bin dir NOT on PATH.

    Every job's program (worker, index, summary, engine) must still be found beside the interpreter.
    """
    env = _env()
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p) != BIN)
    out = subprocess.run(
        [CONTROLLER, "run", "--local", str(tmp_path / "demo"), "--demo", "--once", "--metrics-port", "0",
         "--fail-on-error", "--log-format", "json"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 failed" in out.stdout
    assert list((tmp_path / "demo" / "results" / "reports").rglob("*.alignstats.json"))


def test_run_local_fans_a_large_bam_out_over_child_processes(tmp_path: Path, refdata: Path) -> None:
    """#17 locally: a BAM over a lowered [fanout] threshold goes as shard children (processes with
    AWS_BATCH_JOB_ARRAY_INDEX) and a merge; the report is the single run's (the golden one)."""
    big = tmp_path / "inbox" / "big"
    big.mkdir(parents=True)
    for name in ("a_wgs.bam", "a_wgs.bam.bai"):
        shutil.copy(refdata / name, big / name)
    past = time.time() - 10
    for p in (tmp_path / "inbox").rglob("*"):
        os.utime(p, (past, past))
    config = tmp_path / "fanout.toml"
    # 24.3 MB at 1 MB/s projects to 24.3 s: over 1 s, in ceil(24.3 / 9) = 3 shards.
    config.write_text(
        "[fanout]\nmin_projected_seconds = 1\nbytes_per_second = 1000000\ntarget_shard_seconds = 9\n"
    )
    out = subprocess.run(
        [CONTROLLER, "run", "--local", str(tmp_path), "--config", str(config), "--once",
         "--metrics-port", "0", "--max-seconds", "240"],
        capture_output=True, text=True, timeout=300, env=_env(),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    created = next(e for e in events if e["event"] == "run.created")
    assert created["shards"] == 3 and created["steps"] == ["shard", "alignstats", "summary"]
    report = json.loads((tmp_path / "results" / "reports" / "big" / "a_wgs.bam.alignstats.json").read_text())
    golden = json.loads((refdata / "golden" / "a_wgs__C.json").read_text())
    assert report["InputFileName"] == str(big / "a_wgs.bam")
    assert {k: v for k, v in report.items() if not k.startswith("InputFile")} == {
        k: v for k, v in golden.items() if not k.startswith("InputFile")
    }
    parts = sorted(p.name for p in (tmp_path / "results" / "parts").rglob("part-*.json"))
    assert parts == ["part-0-of-3.json", "part-1-of-3.json", "part-2-of-3.json"]
    logs = (
        sorted(p.name for p in (tmp_path / "logs").rglob("*shard*.log"))
        if (tmp_path / "logs").exists()
        else []
    )
    assert not logs or len(logs) == 3  # each child its own log, where the executor keeps them
    row = next(csv.DictReader((tmp_path / "results" / "table" / "results.csv").open()))
    assert row["shards"] == "3"


def _ready(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                return resp.status == 200
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)
