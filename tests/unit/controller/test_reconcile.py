"""Reconcile: paged DescribeJobs, jobs held by an active upstream, jobs the executor forgot."""

from __future__ import annotations

import time
from pathlib import Path

from controller import reconcile as reconcile_module
from tests.support.fakes import (
    DescribingExecutor,
    ForgetfulExecutor,
    ScriptedExecutor,
    inbox_event,
    local_controller,
    submit_run,
)


def test_reconcile_walks_active_jobs_a_page_at_a_time(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(reconcile_module, "ACTIVE_JOB_PAGE", 2)
    executor = DescribingExecutor()
    ctl = local_controller(tmp_path, executor)
    for i in range(5):
        ctl.handle_event(inbox_event(ctl, f"s{i}.bam"))
    for n, run in enumerate(ctl.ledger.runs()):
        ctl.ledger.mark_submitted(run.run_id, "index", f"J{n}")
    assert ctl.reconcile() == 5
    assert [len(b) for b in executor.batches] == [2, 2, 1]
    assert sum(len(page) for page in ctl.ledger.job_pages(["RUNNING"])) == 5


def test_reconcile_does_not_describe_jobs_held_by_an_active_upstream(tmp_path: Path) -> None:
    executor = ScriptedExecutor()
    ctl = local_controller(tmp_path, executor)
    for sample in ("a", "b"):
        submit_run(ctl, f"{sample}.bam", sample)
    executor.states = {"a-index": "RUNNING", "b-index": "RUNNING"}

    ctl.reconcile()  # only the two index jobs can have moved: their children wait on them in Batch
    assert executor.batches == [["a-index", "b-index"]]
    sample = ctl.metrics.registry.get_sample_value
    assert sample("alignbatch_reconcile_jobs_total", {"outcome": "described"}) == 2
    assert sample("alignbatch_reconcile_jobs_total", {"outcome": "held"}) == 4

    executor.batches.clear()
    executor.states.update({"a-index": "SUCCEEDED", "a-alignstats": "RUNNING"})
    ctl.reconcile()  # a's index ended in this pass: its child is described at once, the grandchild not
    assert executor.batches == [["a-index", "b-index"], ["a-alignstats"]]

    executor.batches.clear()
    executor.states.update({"a-alignstats": "SUCCEEDED", "a-summary": "SUCCEEDED"})
    executor.states.update({"b-index": "SUCCEEDED", "b-alignstats": "SUCCEEDED", "b-summary": "FAILED"})
    ctl.reconcile()  # a whole chain that ended between two passes is seen in one pass
    assert executor.batches == [["a-alignstats", "b-index"], ["a-summary", "b-alignstats"], ["b-summary"]]
    states = {j.job_id: j.state for r in ctl.ledger.runs() for j in ctl.ledger.jobs_for_run(r.run_id)}
    assert states["a-summary"] == "SUCCEEDED" and states["b-summary"] == "FAILED"


def test_held_by_upstream_only_holds_children_of_an_upstream_active_in_the_same_page(
    tmp_path: Path,
) -> None:
    executor = ScriptedExecutor()
    ctl = local_controller(tmp_path, executor)
    submit_run(ctl, "c.bam", "c")
    [page] = ctl.ledger.job_pages(["SUBMITTED"], 10)
    assert reconcile_module.held_by_upstream(page) == {"c-alignstats": "c-index", "c-summary": "c-alignstats"}
    # The upstream on another page (or already ended): not known to be active, so nothing is held.
    assert reconcile_module.held_by_upstream([j for j in page if j.step != "alignstats"]) == {}

    # An upstream submitted after its child (requeued after a restart) is not what the child waits on.
    d = submit_run(ctl, "d.bam", "d", steps=("alignstats", "summary"))
    time.sleep(0.01)
    submit_run(ctl, "d.bam", "d", steps=("index",))
    [page] = ctl.ledger.job_pages(["SUBMITTED"], 10)
    held = reconcile_module.held_by_upstream([j for j in page if j.run_id == d])
    assert held == {"d-summary": "d-alignstats"}


def test_jobs_the_executor_forgot_are_all_requeued_in_one_pass(tmp_path: Path) -> None:
    executor = ForgetfulExecutor()
    ctl = local_controller(tmp_path, executor)
    run_id = submit_run(ctl, "r.bam", "old")
    ctl.reconcile()
    # A requeued upstream releases its children in the same pass, so none waits a pass per step.
    assert executor.batches == [["old-index"], ["old-alignstats"], ["old-summary"]]
    assert [j.state for j in ctl.ledger.jobs_for_run(run_id)] == ["PLANNED"] * 3
