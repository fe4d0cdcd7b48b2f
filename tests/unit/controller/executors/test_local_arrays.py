"""The local executor's shard arrays (#17): children as processes with their index, the parent summing
them up, and a failed child retried alone by Batch's rules."""

from __future__ import annotations

import sys
from pathlib import Path

from controller.executors.base import SubmitRequest
from controller.executors.local import LocalExecutor


def array(name: str, code: str, size: int, deps: tuple[str, ...] = (), attempts: int = 0) -> SubmitRequest:
    return SubmitRequest(
        name, "shard", (sys.executable, "-c", code), deps, 1, 512, 60,
        array_size=size, n_to_n=False, retry_attempts=attempts,
    )  # fmt: skip


def single(name: str, code: str, deps: tuple[str, ...] = ()) -> SubmitRequest:
    return SubmitRequest(name, "alignstats", (sys.executable, "-c", code), deps, 1, 512, 60)


def test_children_run_with_their_index_and_the_merge_waits_for_all(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path / "logs", slots=2, env={})
    out = tmp_path / "out"
    out.mkdir()
    write = f"import os; open(os.path.join({str(out)!r}, os.environ['AWS_BATCH_JOB_ARRAY_INDEX']), 'w')"
    parent = ex.submit(array("shards", write, 4))
    merge = ex.submit(single("merge", f"import os; assert len(os.listdir({str(out)!r})) == 4", (parent,)))
    assert ex.wait_idle(timeout=30)
    st = ex.describe([parent, merge, f"{parent}:3"])
    assert sorted(p.name for p in out.iterdir()) == ["0", "1", "2", "3"]
    assert st[parent].state == st[merge].state == st[f"{parent}:3"].state == "SUCCEEDED"
    assert ex.find_by_name("shards").job_id == parent
    assert (tmp_path / "logs" / "shards.2.log").exists()  # each child its own log
    ex.close(wait=True)


def test_a_killed_child_is_retried_alone(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path / "logs", slots=2, env={})
    runs = tmp_path / "runs"
    runs.mkdir()
    # Child 1's first attempt dies of SIGKILL (as an OOM kill would); every attempt leaves a mark.
    code = (
        "import os, signal\n"
        "i, a = os.environ['AWS_BATCH_JOB_ARRAY_INDEX'], os.environ['AWS_BATCH_JOB_ATTEMPT']\n"
        f"open(os.path.join({str(runs)!r}, i + '-' + a), 'w')\n"
        "if i == '1' and a == '1': os.kill(os.getpid(), signal.SIGKILL)"
    )
    parent = ex.submit(array("shards", code, 3, attempts=3))
    assert ex.wait_idle(timeout=30)
    assert ex.describe([parent])[parent].state == "SUCCEEDED"
    assert sorted(p.name for p in runs.iterdir()) == ["0-1", "1-1", "1-2", "2-1"]
    ex.close(wait=True)


def test_a_child_failing_on_its_input_is_not_retried_and_fails_the_array(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path / "logs", slots=2, env={})
    code = "import os, sys; sys.exit(65 if os.environ['AWS_BATCH_JOB_ARRAY_INDEX'] == '0' else 0)"
    parent = ex.submit(array("shards", code, 2, attempts=3))
    merge = ex.submit(single("merge", "pass", (parent,)))
    assert ex.wait_idle(timeout=30)
    st = ex.describe([parent, merge, f"{parent}:0", f"{parent}:1"])
    assert st[f"{parent}:0"].state == "FAILED" and st[f"{parent}:0"].exit_code == 65
    assert st[f"{parent}:1"].state == "SUCCEEDED"
    assert st[parent].state == "FAILED" and "1 of 2" in (st[parent].reason or "")
    assert st[merge].state == "FAILED" and st[merge].reason == "Dependent job failed"
    ex.close(wait=True)


def test_cancelling_the_array_cancels_its_children(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path / "logs", slots=1, env={})
    parent = ex.submit(array("shards", "import time; time.sleep(30)", 3))
    ex.cancel([parent], "operator")
    assert ex.wait_idle(timeout=20)
    assert ex.describe([parent])[parent].state == "FAILED"
    ex.close(wait=True)
