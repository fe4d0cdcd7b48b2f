"""Controller building blocks without servers: local executor, token bucket, results table, summary tool,
sd_notify, CloudWatch batching."""

from __future__ import annotations

import csv
import io
import json
import socket
import sys
import time
from pathlib import Path

import pytest

from controller.executors.base import SubmitRequest
from controller.executors.local import LocalExecutor
from controller.ratelimit import TokenBucket
from controller.results_table import columns, render_csv, render_jsonl
from controller.systemd import notify
from worker import summary


def req(name: str, code: str, deps: tuple[str, ...] = (), timeout: int = 60) -> SubmitRequest:
    return SubmitRequest(name, "alignstats", (sys.executable, "-c", code), deps, 1, 512, timeout)


def test_local_executor_honours_dependencies_and_failures(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path / "logs", slots=2, env={})
    marker = tmp_path / "order.txt"
    a = ex.submit(req("a", f"import time; time.sleep(0.3); open({str(marker)!r}, 'a').write('a')"))
    b = ex.submit(req("b", f"open({str(marker)!r}, 'a').write('b')", (a,)))
    bad = ex.submit(req("bad", "import sys; print('boom'); sys.exit(65)"))
    after_bad = ex.submit(req("after-bad", "print('never')", (bad,)))
    assert ex.wait_idle(timeout=30)
    st = ex.describe([a, b, bad, after_bad, "unknown"])
    assert "unknown" not in st
    assert marker.read_text() == "ab"
    assert st[a].state == st[b].state == "SUCCEEDED" and st[a].exit_code == 0
    assert st[bad].state == "FAILED" and st[bad].exit_code == 65 and "exit code 65" in (st[bad].reason or "")
    assert st[after_bad].state == "FAILED" and st[after_bad].reason == "Dependent job failed"
    assert "boom" in Path(st[bad].log_stream or "").read_text()
    assert ex.find_by_name("b").job_id == b and ex.find_by_name("zzz") is None
    ex.close(wait=True)


def test_local_executor_cancel_and_timeout(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path / "logs", slots=1, env={})
    slow = ex.submit(req("slow", "import time; time.sleep(30)"))
    waiting = ex.submit(req("waiting", "pass", (slow,)))
    ex.cancel([slow], "operator")
    assert ex.wait_idle(timeout=20)
    st = ex.describe([slow, waiting])
    assert st[slow].state == "FAILED" and st[waiting].state == "FAILED"
    timed = ex.submit(req("timed", "import time; time.sleep(30)", timeout=1))
    assert ex.wait_idle(timeout=20)
    assert "timeout" in (ex.describe([timed])[timed].reason or "")
    ex.close(wait=True)


def test_token_bucket_paces_calls() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(10, burst=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(12):
        bucket.acquire()
    # 2 from the burst, then 10 more at 10/s: one second of waiting in total.
    assert sum(slept) == pytest.approx(1.0)


def test_results_table_rendering() -> None:
    rows = [
        {"sample": "a", "run_id": "r1", "TotalRecords": 5, "MappedReadsPct": 12.5},
        {"sample": 'b, "quoted"', "run_id": "r2", "TotalRecords": 7, "CapTargets": 3},
    ]
    cols = columns(rows)
    assert cols[0] == "sample" and cols[-3:] == ["TotalRecords", "MappedReadsPct", "CapTargets"]
    parsed = list(csv.DictReader(io.StringIO(render_csv(rows).decode())))
    assert parsed[0]["MappedReadsPct"] == "12.500000" and parsed[1]["MappedReadsPct"] == ""
    assert parsed[1]["sample"] == 'b, "quoted"'
    assert [json.loads(x) for x in render_jsonl(rows).decode().splitlines()] == rows


def test_summary_tool_writes_row_and_rejects_bad_reports(tmp_path: Path, data_dir: Path) -> None:
    report = tmp_path / "r.json"
    report.write_text((data_dir / "golden" / "i_edge_bam__C.json").read_text())
    row = tmp_path / "rows" / "r1.json"
    meta = ["--meta", "run_id=r1", "--meta", "input_size=12"]
    rc = summary.main(["--report", str(report), "--output", str(row), *meta])
    assert rc == 0
    data = json.loads(row.read_text())
    assert data["run_id"] == "r1" and data["input_size"] == 12 and data["engine"]
    assert data["TotalRecords"] == json.loads(report.read_text())["TotalRecords"]
    report.write_text('{"InputFileName": "x"')
    assert summary.main(["--report", str(report), "--output", str(row)]) == 65
    report.write_text(json.dumps({"InputFileName": "x", "InputFileSize": 1}))
    assert summary.main(["--report", str(report), "--output", str(row)]) == 65
    assert summary.main(["--report", str(tmp_path / "missing.json"), "--output", str(row)]) == 66
    assert summary.main(["--report", str(report), "--output", str(row), "--meta", "novalue"]) == 64


def test_sd_notify_sends_datagrams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert notify("READY=1")
        assert notify("STATUS=runs active=1")
        assert server.recv(100) == b"READY=1"
        assert server.recv(100) == b"STATUS=runs active=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert notify("READY=1") is False


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_format_auto_is_console_on_a_terminal_and_json_elsewhere() -> None:
    from controller.cli import build_parser
    from core.logs import wants_json

    assert wants_json("auto", io.StringIO()) is True  # journald, pipes, files
    assert wants_json("auto", _Tty()) is False
    assert wants_json("json", _Tty()) is True
    assert wants_json("console", io.StringIO()) is False
    assert build_parser().parse_args(["run", "--local", "d"]).log_format == "auto"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--local", "d", "--log-format", "xml"])


def test_local_executor_forgets_reported_jobs(tmp_path: Path) -> None:
    """Finished jobs leave memory once their final state was reported (and nothing unfinished needs them),
    as Batch forgets old jobs; the controller then no longer asks about them."""
    ex = LocalExecutor(tmp_path / "logs", slots=1, env={}, forget_after_seconds=0)
    done = ex.submit(req("done", "pass"))
    assert ex.wait_idle(timeout=30)
    assert ex.describe([done])[done].state == "SUCCEEDED"  # reported once...
    assert ex.describe([done]) == {} and ex.find_by_name("done") is None  # ...then forgotten
    first = ex.submit(req("first", "pass"))
    second = ex.submit(req("second", "import time; time.sleep(30)", (first,)))
    deadline = time.monotonic() + 30
    while ex.describe([second])[second].state != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ex.describe([first])[first].state == "SUCCEEDED"
    assert first in ex.describe([first])  # reported, but `second` still depends on it: kept
    ex.cancel([second], "operator")
    assert ex.wait_idle(timeout=20)
    assert ex.describe([first, second])[second].state == "FAILED"
    assert ex.describe([first, second]) == {}
    ex.close(wait=True)
