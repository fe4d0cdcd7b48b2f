"""Array-job submission (#18): which runs share arrays, one SubmitJob per step, N_TO_N, restarts."""

from __future__ import annotations

import json
from pathlib import Path

from controller.arrays import group_runs
from controller.executors.base import ExecutorError, SubmitRequest
from tests.support.fakes import ArrayExecutor, inbox_event, local_controller


def _controller(tmp_path: Path, n: int, *, min_runs: int = 5, indexed: int = 0):
    executor = ArrayExecutor()
    ctl = local_controller(tmp_path, executor)
    ctl.submitter.arrays.min_runs = min_runs
    for i in range(n):
        ctl.handle_event(inbox_event(ctl, f"s{i:02d}.bam"))
    for i in range(indexed):
        ctl.ledger.update_job(ctl.ledger.runs()[i].run_id, "index", state="CANCELLED")
    return ctl, executor


def _by_run(ctl) -> dict[str, list]:
    run_ids = [r.run_id for r in sorted(ctl.ledger.runs(), key=lambda r: r.created_at)]
    return ctl.ledger.jobs_for_runs(run_ids)


def test_runs_group_by_shape_and_wait_for_enough_of_them(tmp_path: Path) -> None:
    ctl, _ = _controller(tmp_path, 12)
    runs = _by_run(ctl)
    [group] = group_runs(runs, min_runs=5)
    assert group.steps == ("index", "alignstats", "summary") and len(group.run_ids) == 12
    assert [len(g.run_ids) for g in group_runs(runs, min_runs=5, max_size=5)] == [5, 5]  # 2 left: single
    assert group_runs(runs, min_runs=13) == [] and group_runs(runs, min_runs=0) == []
    # A run with anything submitted, or a different resource tier, is not in the group.
    first = next(iter(runs))
    ctl.ledger.mark_intent(first, "index")
    assert len(group_runs(_by_run(ctl), min_runs=5)[0].run_ids) == 11


def test_a_burst_goes_as_one_array_per_step_with_n_to_n_and_a_manifest(tmp_path: Path) -> None:
    ctl, executor = _controller(tmp_path, 7)
    assert ctl.submit_ready() == 21
    requests: list[SubmitRequest] = executor.requests
    assert [(r.step, r.array_size) for r in requests] == [("index", 7), ("alignstats", 7), ("summary", 7)]
    index_id, stats_id, _ = executor.submitted and [executor.by_name[r.name] for r in requests]
    assert requests[0].depends_on == () and requests[1].depends_on == (index_id,)
    assert requests[2].depends_on == (stats_id,)
    assert requests[1].tags["alignbatch:run-id"] == requests[1].name  # the array's, not a run's
    runs = _by_run(ctl)
    for i, (run_id, jobs) in enumerate(runs.items()):
        by_step = {j.step: j for j in jobs}
        assert (
            by_step["alignstats"].job_id == f"{stats_id}:{i}" and by_step["alignstats"].state == "SUBMITTED"
        )
        assert by_step["alignstats"].array_index == i
        # Child i's own command is line i of the manifest, upstream ids rendered as the children's.
        uri = requests[2].command[-1]
        line = json.loads(Path(uri).read_text().splitlines()[i])
        assert line["run_id"] == run_id
        assert f"job_id_alignstats={stats_id}:{i}" in line["argv"]
    assert requests[0].command[:2] == ("alignbatch-worker", "--array-manifest")
    assert ctl.submit_ready() == 0  # nothing left: no second array, no single job


def test_fewer_runs_than_the_threshold_go_as_single_jobs(tmp_path: Path) -> None:
    ctl, executor = _controller(tmp_path, 4)
    assert ctl.submit_ready() == 12
    assert {r.array_size for r in executor.requests} == {0}


def test_an_array_intent_left_by_a_crash_is_resolved_by_its_name(tmp_path: Path) -> None:
    ctl, executor = _controller(tmp_path, 6)
    runs = _by_run(ctl)
    [group] = group_runs(runs, min_runs=5)
    arrays = ctl.submitter.arrays
    # The crash: the intent is committed, the array reached Batch, its id was never recorded.
    from controller.arrays import array_name

    name = array_name("index", [next(j.name for j in runs[r] if j.step == "index") for r in group.run_ids])
    ctl.ledger.mark_array_intent(name, "index", group.run_ids)
    executor.by_name[name] = "A-index"
    assert ctl.ledger.array_intents() == [name]
    ctl.submit_ready()
    # The index array is adopted, never submitted again; the steps after it go as arrays as planned.
    assert [(r.step, r.array_size) for r in executor.requests] == [("alignstats", 6), ("summary", 6)]
    index_rows = [j for jobs in _by_run(ctl).values() for j in jobs if j.step == "index"]
    assert [j.job_id for j in index_rows] == [f"A-index:{i}" for i in range(6)]
    assert executor.requests[0].depends_on == ("A-index",)
    assert arrays.ledger.array_intents() == []


def test_cancel_and_retry_still_work_per_run_and_the_retry_goes_alone(tmp_path: Path) -> None:
    ctl, executor = _controller(tmp_path, 6)
    cancelled: list[str] = []
    executor.cancel = lambda ids, reason: cancelled.extend(ids)  # type: ignore[method-assign]
    ctl.submit_ready()
    run_id, jobs = next(iter(_by_run(ctl).items()))
    assert ctl.cancel_run(run_id)
    assert sorted(cancelled) == sorted(j.job_id for j in jobs)  # the run's own children, nothing else
    assert ctl.ledger.retry_run(run_id)
    again = ctl.ledger.jobs_for_run(run_id)
    assert {(j.state, j.array_name, j.array_index) for j in again} == {("PLANNED", None, None)}
    before = len(executor.requests)
    ctl.submit_ready()
    mine = executor.requests[before:]
    assert [(r.step, r.array_size) for r in mine] == [("index", 0), ("alignstats", 0), ("summary", 0)]
    assert all(r.name.endswith("-a2") for r in mine)


def test_an_array_batch_refuses_goes_as_single_jobs_in_the_same_pass(tmp_path: Path) -> None:
    ctl, executor = _controller(tmp_path, 6)
    plain = executor.submit

    def refuse_arrays(request: SubmitRequest) -> str:
        if request.array_size:
            raise ExecutorError("Batch SubmitJob failed: ClientException: arrays not allowed", permanent=True)
        return plain(request)

    executor.submit = refuse_arrays  # type: ignore[method-assign]
    assert ctl.submit_ready() == 18  # the refusal is not retried: every run goes alone
    assert {r.array_size for r in executor.requests} == {0}
    rows = [j for jobs in _by_run(ctl).values() for j in jobs]
    assert {(j.state, j.array_name) for j in rows} == {("SUBMITTED", None)}


def test_jobs_for_runs_reads_the_rows_one_run_at_a_time_would(tmp_path: Path) -> None:
    """The array pass's bulk read (rows built from tuples, by column name) gives exactly the rows the
    per-run read gives, runs in the order asked, each run's rows by step as the primary key orders them."""
    ctl, _ = _controller(tmp_path, 4)
    run_ids = [r.run_id for r in ctl.ledger.runs()][::-1]
    ctl.ledger.mark_intent(run_ids[0], "index")  # rows in more than one state
    ctl.ledger.mark_array_intent("array-x-summary", "summary", run_ids[1:3])
    got = ctl.ledger.jobs_for_runs(run_ids)
    assert list(got) == run_ids
    for run_id in run_ids:
        assert [j.step for j in got[run_id]] == sorted(j.step for j in got[run_id])
        assert sorted(got[run_id], key=lambda j: j.step) == sorted(
            ctl.ledger.jobs_for_run(run_id), key=lambda j: j.step
        )
    assert got[run_ids[2]][-1].array_index == 1 and got[run_ids[2]][-1].array_name == "array-x-summary"
