"""Submission of bursts and backfills as array jobs: one SubmitJob per step for up to 10,000 runs.

Each pass groups the runs that wait with nothing submitted (controller.arrays); for every group, step by
step in DAG order: the children's rows are marked INTENT under the array's deterministic name, the
manifest (line i = child i's full command) is written to `<results root>/manifests/<name>.jsonl`, the
array job is submitted (`alignbatch-worker --array-manifest URI`, worker/array_task.py; N_TO_N on the
upstream step's array) and every child's id `<array id>:<i>` is recorded. From then on each child is an
ordinary job of its run: reconcile describes it by that id, `cancel` terminates it, a reclaim or
`retry` plans it again as a single job. Runs in smaller groups, and everything this stage leaves, go
through the per-run path (controller.submit).

Restart: INTENT rows with an array name are resolved first, by looking the name up (ListJobs), exactly as
a single job's intent is; only an array Batch does not know is submitted (again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from controller.arrays import array_name, group_runs, manifest_text
from controller.executors.base import Executor, ExecutorError, SubmitRequest
from controller.ledger import JobRow, Ledger
from controller.metrics import Metrics
from controller.model import submission_order
from controller.placement import QueuePolicy
from controller.states import JobState
from core.locations import parse_location
from core.logs import get_logger
from core.objectstore import ObjectStore

COMMAND = ("alignbatch-worker", "--array-manifest")


class ArraySubmitter:
    def __init__(
        self, *, ledger: Ledger, executor: Executor, store: ObjectStore, metrics: Metrics, results_root: str,
        queues: QueuePolicy, min_runs: int, max_size: int,
    ) -> None:  # fmt: skip
        self.ledger, self.executor, self.store, self.metrics = ledger, executor, store, metrics
        self.results_root, self.queues = results_root.rstrip("/"), queues
        self.min_runs, self.max_size = min_runs, max_size
        self.log = get_logger(component="controller")

    @property
    def enabled(self) -> bool:
        return self.executor.supports_arrays and self.min_runs > 0

    def manifest_uri(self, name: str) -> str:
        return str(parse_location(self.results_root, allow_prefix=True).join(f"manifests/{name}.jsonl"))

    def submit_pass(self) -> int:
        """Resolve array intents, then submit the waiting groups. Returns jobs (children) submitted.
        Raises ExecutorError when Batch is unreachable or throttling (the intents stay for next pass)."""
        if not self.enabled:
            return 0
        submitted = self.resolve_intents()
        after: str | None = None
        while True:
            # One array's worth of runs at a time: their rows and specs are what this pass holds; the
            # next round starts after the last run this one looked at (those left out go single).
            fresh = self.ledger.fresh_runs(limit=self.max_size, after=after)
            if not fresh:
                return submitted
            after = fresh[-1]
            jobs = self.ledger.jobs_for_runs(fresh)
            groups = group_runs(jobs, min_runs=self.min_runs, max_size=self.max_size)
            if not groups:
                return submitted
            this_round = sum(self._submit_steps(g.run_ids, after=None, jobs=jobs) for g in groups)
            if this_round == 0:  # every group refused (released to single jobs): do not take them again
                return submitted
            submitted += this_round

    def resolve_intents(self) -> int:
        done = 0
        for name in self.ledger.array_intents():
            members = self.ledger.array_members(name)
            intent = [m for m in members if m.state == JobState.INTENT]
            if not intent:
                continue
            run_ids, step = [m.run_id for m in members], intent[0].step
            found = self.executor.find_by_name(name)
            if found is not None:
                n = self.ledger.mark_array_submitted(name, found.job_id, queue=self._queue(intent) or None)
                self.log.info("array.intent_resolved", array=name, job_id=found.job_id, children=n)
                self.metrics.submissions.labels(step=step, outcome="recovered").inc(n)
            else:
                jobs = self.ledger.jobs_for_runs(run_ids)
                done += self._submit_array(name, step, run_ids, jobs, _job_ids(jobs))
            # The crash may have come between two steps' arrays: the steps after go as arrays too.
            done += self._submit_steps(run_ids, after=step, jobs=self.ledger.jobs_for_runs(run_ids))
        return done

    def _submit_steps(
        self, run_ids: Sequence[str], *, after: str | None, jobs: Mapping[str, Sequence[JobRow]]
    ) -> int:
        """One array per step of these runs (after step `after`), in DAG order, while every run's row
        for the step is still PLANNED outside an array; a step where that is not so ends the walk (the
        per-run path submits what is left). `jobs`: the runs' rows as read before the walk."""
        submitted = 0
        if not run_ids:
            return 0
        ids = _job_ids(jobs)  # kept up to date here: each step's children are the next step's upstream
        steps = [s.step for s in submission_order(j.job_spec for j in jobs[run_ids[0]])]
        if after is not None:
            steps = steps[steps.index(after) + 1 :] if after in steps else []
        for step in steps:
            rows = [_row(jobs[r], step) for r in run_ids]
            if any(r is None or r.state != JobState.PLANNED or r.array_name for r in rows):
                return submitted
            name = array_name(step, [r.name for r in rows if r is not None])
            self.ledger.mark_array_intent(name, step, run_ids)
            n = self._submit_array(name, step, list(run_ids), jobs, ids)
            if not n:
                return submitted
            submitted += n
        return submitted

    def _queue(self, rows: Sequence[JobRow]) -> str:
        return self.queues.queue_for(max(r.reclaims for r in rows))

    def _submit_array(
        self, name: str, step: str, run_ids: list[str], jobs: Mapping[str, Sequence[JobRow]],
        ids: dict[str, dict[str, str]],
    ) -> int:  # fmt: skip
        """Manifest, then SubmitJob for array `name` (its rows already INTENT), then the children's ids
        (also into `ids`, run -> step -> job id)."""
        found = [_row(jobs[r], step) for r in run_ids]
        rows = [r for r in found if r is not None]
        if len(rows) != len(run_ids):  # a run without this step: cannot be child i of this array
            self.ledger.release_array_intent([name])
            return 0
        spec = rows[0].job_spec
        entries = []
        upstream: set[str] = set()
        for run_id, mine in zip(run_ids, rows, strict=True):
            entries.append((run_id, mine.job_spec.worker.argv(ids[run_id])))
            for dep in mine.job_spec.depends_on:
                if ids[run_id].get(dep):
                    upstream.add(ids[run_id][dep].split(":", 1)[0])  # the upstream step's array
        if len(upstream) > 1:  # not the same upstream array for every child: N_TO_N cannot say it
            self.ledger.release_array_intent([name])
            self.log.warning("array.released", array=name, reason="children depend on different arrays")
            return 0
        uri = self.manifest_uri(name)
        self.store.write_bytes(
            parse_location(uri), manifest_text(entries), content_type="application/x-ndjson"
        )
        queue = self._queue(rows)
        tags = {
            **{k: v for k, v in spec.tags.items() if k not in ("alignbatch:sample", "alignbatch:run-id")},
            # The parent's tags, which Batch does not propagate to the children (docs/controller.md, "What
            # AWS Batch documents about array jobs"): they stand for the array, not a run. The ledger
            # rebuild groups our jobs by alignbatch:run-id; each child's run is its manifest line.
            "alignbatch:run-id": name, "alignbatch:array": name,
        }  # fmt: skip
        request = SubmitRequest(
            name=name, step=step, command=(*COMMAND, uri), depends_on=tuple(sorted(upstream)),
            vcpus=spec.vcpus, memory_mib=spec.memory_mib, timeout_seconds=spec.timeout_seconds, tags=tags,
            queue=queue, share=spec.share, array_size=len(run_ids),
        )  # fmt: skip
        try:
            array_id = self.executor.submit(request)
        except ExecutorError as exc:
            self.metrics.submissions.labels(step=step, outcome="error").inc(len(run_ids))
            if exc.permanent:  # refused outright: these runs go as single jobs instead
                self.ledger.release_array_intent([name])
                self.log.error("array.refused", array=name, error=str(exc), children=len(run_ids))
                return 0
            raise
        n = self.ledger.mark_array_submitted(name, array_id, queue=queue or None)
        for index, run_id in enumerate(run_ids):
            ids[run_id][step] = f"{array_id}:{index}"
        self.metrics.submissions.labels(step=step, outcome="submitted").inc(n)
        self.log.info(
            "array.submitted", array=name, job_id=array_id, step=step, children=n, manifest=uri,
            depends_on=sorted(upstream), queue=queue,
        )  # fmt: skip
        return n


def _row(jobs: Sequence[JobRow], step: str) -> JobRow | None:
    for job in jobs:  # a plain loop: called 60,000 times per 10,000-run array round (next() on a genexpr
        if job.step == step:  # costs twice as much)
            return job
    return None


def _job_ids(jobs: Mapping[str, Sequence[JobRow]]) -> dict[str, dict[str, str]]:
    return {run_id: {j.step: j.job_id for j in rows if j.job_id} for run_id, rows in jobs.items()}
