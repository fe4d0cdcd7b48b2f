"""Scenario 7: SIGTERM with work in flight (what systemd sends on stop/restart).

The unit's stop timeout is 30 s: the controller must stop polling, finish the pass in progress and exit 0
within it, leaving Batch jobs running; the next start picks them up without losing or repeating any.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.harness import wait_for
from tests.support.pipeline import Figures, Pipeline
from tests.support.workload import drop_bams

STOP_TIMEOUT = 30.0  # TimeoutStopSec of systemd/alignbatch-controller.service (default 90 s; we hold 30)


def test_sigterm_with_jobs_in_flight_exits_cleanly_and_resumes(
    pipeline: Pipeline, figures: Figures, data_dir: Path
) -> None:
    ctl = pipeline.controller
    ctl.start().wait_ready()
    began = time.monotonic()
    keys = drop_bams(pipeline, data_dir, 5, prefix="term", with_index_every=1)
    figures.objects_dropped = len(keys)

    def in_flight() -> bool:
        jobs = pipeline.jobs()
        submitted = [j for j in jobs if j["job_id"]]
        finished_runs = [r for r in pipeline.runs() if r["state"] != "active"]
        return len(submitted) >= 3 and len(finished_runs) < len(keys)

    wait_for("jobs in flight", in_flight, 60, 0.2)
    code = ctl.terminate(timeout=STOP_TIMEOUT)
    figures.sigterms = 1
    figures.extra["sigterm_exit_seconds"] = round(ctl.terms[-1], 2)
    assert code == 0, f"controller exited {code} on SIGTERM:\n{ctl.log_tail()}"
    events = [e.get("event") for e in ctl.log_events()]
    assert "daemon.stopped" in events
    unfinished = [r for r in pipeline.runs() if r["state"] == "active"]
    figures.extra["active_runs_at_stop"] = len(unfinished)

    ctl.start().wait_ready()
    pipeline.wait_settled(keys, timeout=180)
    figures.drain_seconds = time.monotonic() - began
    figures.duplicate_jobs = len(pipeline.duplicate_batch_jobs())
    pipeline.assert_exactly_once(keys)
