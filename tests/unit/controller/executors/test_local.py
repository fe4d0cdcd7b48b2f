"""The local executor: dependencies and failures like Batch, cancel and timeout, forgetting reported jobs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from controller.executors.base import SubmitRequest
from controller.executors.local import LocalExecutor


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
