"""State that survives the host: restoring or rebuilding the ledger when the controller starts without one.

On start with no ledger file (a new host, a lost disk) and `[state] restore_on_start`:
1. the latest backup (`<results root>/ledger/backup.sqlite.gz`, written by controller.backup) is
   downloaded, checked and put in place;
2. in either case, what the results store and the executor know is merged in (`rebuild`):
   - every summary row under `rows/` whose run the ledger lacks becomes a succeeded run (so a redelivered
     event for that object is a duplicate, not a second run);
   - every job the executor still knows under our names (`<sample>-<run id>-<step>-a<attempt>`, any
     state; Batch ListJobs + DescribeJobs) is adopted: its run is planned again from the object the job's
     command names (the planner is pure: the same object gives the same run id and names), then the job
     takes its Batch id and state. Nothing found in Batch is ever submitted again.
   - then, unless this is the first controller on these results (no `ledger/started` marker, no rows,
     no jobs in Batch: a first start takes its objects from the queue), the inbox is listed and every
     object no run exists for (under its versionId or its ETag) is
     planned as `submit` would backfill it: runs planned after the backup whose jobs had not been
     submitted when the ledger was lost (their SQS messages were deleted on commit) are not lost.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from controller.backup import backup_location
from controller.events import ObjectEvent, ObjectKind
from controller.executors.base import ExecutorError, FoundJob, JobStatus
from controller.model import InputObject, Step
from controller.states import UNSUBMITTED
from core.errors import ObjectMissing, WorkerError
from core.locations import Location, LocationError, parse_location
from core.logs import get_logger
from core.objectstore import ObjectStore

# Our job names (controller.model.job_name): <sample slug>-<run id>-<step>-a<attempt>.
JOB_NAME_PATTERN = r"-(r[0-9a-f]{16})-(" + "|".join(Step) + r")-a(\d+)(?:-r(\d+))?$"
_JOB_NAME = re.compile(JOB_NAME_PATTERN)
SQLITE_MAGIC = b"SQLite format 3\x00"
# Left in the results store by a controller's first start: a later start without a ledger lost one.
STARTED_MARKER = "ledger/started"

if TYPE_CHECKING:
    from controller.service import Controller

log = get_logger(component="recovery")


def restore_backup(store: ObjectStore, results_root: str, ledger_path: str) -> bool:
    """Put the latest backup at `ledger_path` (atomically). False when there is none. Raises WorkerError
    when the backup cannot be read or is not a sound SQLite database (the message names it)."""
    loc = backup_location(results_root)
    started = time.monotonic()
    try:
        data = store.read_bytes(loc)
    except ObjectMissing:
        return False
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise WorkerError(
            f"ledger backup {loc} is not gzip data ({exc}); delete it to rebuild instead"
        ) from None
    if not raw.startswith(SQLITE_MAGIC):
        raise WorkerError(f"ledger backup {loc} is not an SQLite database; delete it to rebuild instead")
    dest = Path(ledger_path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.restore")
    tmp.write_bytes(raw)
    conn = sqlite3.connect(tmp)
    try:
        verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        conn.close()
    if verdict != "ok":
        tmp.unlink()
        raise WorkerError(f"ledger backup {loc} fails SQLite's quick_check ({verdict}); delete it to rebuild")
    os.replace(tmp, dest)
    log.info("ledger.restored", backup=str(loc), bytes=len(raw), seconds=round(time.monotonic() - started, 3))
    return True


@dataclass
class RebuildReport:
    finished_runs: int = 0  # succeeded runs recorded from rows/
    planned_runs: int = 0  # runs planned again for jobs found in the executor
    adopted_jobs: int = 0  # jobs that took their executor id (never resubmitted)
    skipped: int = 0  # found jobs whose object could not be named or read
    backfilled_runs: int = 0  # inbox objects without any run, planned from the inbox listing


def _marker(ctl: Controller) -> Location:
    return parse_location(ctl.cfg.results_root, allow_prefix=True).join(STARTED_MARKER)


def _had_a_ledger(ctl: Controller) -> bool:
    """A controller ran against these results before (it leaves STARTED_MARKER): a missing ledger was
    lost, not never made."""
    try:
        return ctl.store.head(_marker(ctl)) is not None
    except (WorkerError, LocationError):
        return True  # cannot tell: listing the inbox is only wasted work, never a second run


def _mark_started(ctl: Controller) -> None:
    try:
        ctl.store.write_bytes(_marker(ctl), json.dumps({"started_at": time.time()}).encode())
    except (WorkerError, LocationError) as exc:
        log.warning("ledger.marker_write_failed", error=str(exc))


def rebuild(ctl: Controller, outcome: str = "new") -> RebuildReport:
    """Merge what the results store (rows/) and the executor know into the ledger (see the module)."""
    report = RebuildReport()
    lost = outcome == "restored" or _had_a_ledger(ctl)
    started = time.monotonic()
    try:
        ctl.finisher.rows.refresh()  # read once, kept for the first table flush
        rows = ctl.finisher.rows.all_rows()
    except (WorkerError, LocationError) as exc:
        log.error("ledger.rebuild_rows_failed", error=str(exc))
        rows = []
    for row in rows:
        if _adopt_row(ctl, row):
            report.finished_runs += 1
    try:
        found = ctl.executor.discover(JOB_NAME_PATTERN) + _array_children(ctl)
    except ExecutorError as exc:
        log.error("ledger.rebuild_jobs_failed", error=str(exc), fix="check the Batch queue and the role")
        found = []
    by_run: dict[str, list[FoundJob]] = defaultdict(list)
    for job in found:
        m = _JOB_NAME.search(job.status.name)
        if m:
            by_run[job.tags.get("alignbatch:run-id") or m.group(1)].append(job)
    for run_id, jobs in by_run.items():
        _adopt_jobs(ctl, run_id, jobs, report)
    if lost or report.finished_runs or report.adopted_jobs:  # not a first start: runs may be missing
        report.backfilled_runs = _backfill_inbox(ctl)
    _mark_started(ctl)
    log.info(
        "ledger.rebuilt", seconds=round(time.monotonic() - started, 3), finished_runs=report.finished_runs,
        planned_runs=report.planned_runs, adopted_jobs=report.adopted_jobs, skipped=report.skipped,
        backfilled_runs=report.backfilled_runs,
    )  # fmt: skip
    return report


def _array_children(ctl: Controller) -> list[FoundJob]:
    """The children of our array jobs (#18) as single jobs of their runs: each parent's manifest says
    which run child i is and its command; DescribeJobs says its state. Named like a single job of that
    run (`<array name>-<run id>-<step>-a1`: arrays are only ever made of first attempts) so they are
    adopted the same way; a child whose run was planned again later (a reclaim) loses to that job."""
    from controller.array_submit import COMMAND
    from controller.arrays import ARRAY_NAME_PATTERN

    out: list[FoundJob] = []
    for parent in ctl.executor.discover(ARRAY_NAME_PATTERN):
        command = list(parent.command)
        if ":" in parent.status.job_id or command[:2] != list(COMMAND) or len(command) != 3:
            continue
        try:
            loc = parse_location(command[2])
            lines = ctl.store.read_bytes(loc).decode("utf-8").splitlines()
        except (WorkerError, LocationError, UnicodeDecodeError) as exc:
            log.warning("ledger.rebuild_array_skipped", array=parent.status.name, error=str(exc))
            continue
        step = parent.status.name.rsplit("-", 1)[-1]
        entries = [json.loads(line) for line in lines if line.strip()]
        ids = [f"{parent.status.job_id}:{i}" for i in range(len(entries))]
        statuses: dict[str, JobStatus] = {}
        for i in range(0, len(ids), 100):
            statuses.update(ctl.executor.describe(ids[i : i + 100]))
        for child_id, entry in zip(ids, entries, strict=True):
            status = statuses.get(child_id)
            if status is None:
                continue
            name = f"{parent.status.name}-{entry['run_id']}-{step}-a1"
            tags = {"alignbatch:run-id": entry["run_id"]}
            out.append(FoundJob(replace(status, name=name), tuple(entry["argv"]), tags))
    return out


def _backfill_inbox(ctl: Controller) -> int:
    """Plan every inbox object that has no run yet (see the module). Returns the runs created. Not in
    local mode: the local source walks the whole inbox again after a start anyway."""
    from controller.listing import listed_events

    if ctl.inbox.replayed_on_start:
        return 0
    try:
        root = parse_location(ctl.inbox.root, allow_prefix=True)
        events = listed_events(ctl.inbox, ctl.store, root)
    except (WorkerError, LocationError) as exc:
        log.error("ledger.rebuild_inbox_failed", error=str(exc), fix="run `alignbatch-controller submit`")
        return 0
    created = 0
    for ev in events:
        try:
            if ev.kind is ObjectKind.ALIGNMENT and ctl.ledger.content_has_run(ev.bucket, ev.key, ev.etag):
                continue  # its run is known (adopted from rows/ or Batch), perhaps under its versionId
            created += ctl.handle_event(ev) == "accepted"
        except (ValueError, WorkerError, LocationError) as exc:  # one odd object never stops the start
            log.error("ledger.rebuild_object_failed", key=repr(ev.key), error=f"{type(exc).__name__}: {exc}")
    return created


def _event_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _object_of(ctl: Controller, input_uri: str, inbox_key: str) -> tuple[str, str]:
    """(bucket, key) as intake records them: the S3 bucket and full key, or the inbox directory and the
    path relative to it."""
    loc = parse_location(input_uri)
    if loc.is_s3:
        return loc.bucket, loc.key
    return ctl.cfg.inbox_root, inbox_key


def _adopt_row(ctl: Controller, row: dict[str, object]) -> bool:
    run_id, input_uri = str(row.get("run_id") or ""), str(row.get("input_uri") or "")
    if not run_id or not input_uri or ctl.ledger.get_run(run_id) is not None:
        return False
    inbox_key = str(row.get("inbox_key") or "")
    try:
        bucket, key = _object_of(ctl, input_uri, inbox_key)
    except LocationError:
        return False
    size = row.get("input_size")
    obj = InputObject(
        bucket, key, int(size) if isinstance(size, int) else 0, str(row.get("input_etag") or ""),
        str(row.get("input_version_id") or "") or None, False, _event_time(str(row.get("event_time") or "")),
        str(row.get("s3_sequencer") or "") or None,
    )  # fmt: skip
    row_uri = str(parse_location(ctl.cfg.results_root, allow_prefix=True).join(f"rows/{run_id}.json"))
    adopted = ctl.ledger.adopt_finished(
        obj, run_id=run_id, sample=str(row.get("sample") or ""), input_uri=input_uri, inbox_key=inbox_key,
        report_uri=str(row.get("report_uri") or ""), row_uri=row_uri,
    )  # fmt: skip
    if adopted:
        ctl.ledger.upsert_result(inbox_key or run_id, run_id, time.time(), row)
    return adopted


def _meta(command: tuple[str, ...]) -> dict[str, str]:
    """The summary step's `--meta KEY=VALUE` pairs, and `-i INPUT` of the index/alignstats steps."""
    out: dict[str, str] = {}
    for i, arg in enumerate(command):
        if arg == "--meta" and i + 1 < len(command) and "=" in command[i + 1]:
            k, v = command[i + 1].split("=", 1)
            out[k] = v
        elif arg == "-i" and i + 1 < len(command):
            out.setdefault("input_uri", command[i + 1])
    return out


def _plan_again(ctl: Controller, run_id: str, jobs: list[FoundJob]) -> bool:
    """Plan the run the jobs belong to from the object their commands name (same object, same plan)."""
    meta: dict[str, str] = {}
    # The summary step's meta (the exact identity) first; an index/alignstats `-i` only fills gaps.
    for job in sorted(jobs, key=lambda j: Step.SUMMARY not in j.status.name):
        for k, v in _meta(job.command).items():
            meta.setdefault(k, v)
    input_uri = meta.get("input_uri")
    if not input_uri:
        return False
    try:
        loc = parse_location(input_uri)
        etag, version_id = meta.get("input_etag", ""), meta.get("input_version_id") or None
        size = int(meta["input_size"]) if meta.get("input_size", "").isdigit() else None
        if not etag or size is None:
            info = ctl.store.head(loc)
            if info is None:
                return False
            etag, version_id, size = info.etag, info.version_id, info.size
        bucket, key = _object_of(ctl, input_uri, meta.get("inbox_key", ""))
    except (WorkerError, LocationError):
        return False
    ev = ObjectEvent(
        bucket, key, size, etag, version_id, "ObjectCreated:Put", _event_time(meta.get("event_time"))
    )
    ctl.handle_event(ev)
    return ctl.ledger.get_run(run_id) is not None


def _adopt_jobs(ctl: Controller, run_id: str, jobs: list[FoundJob], report: RebuildReport) -> None:
    if ctl.ledger.get_run(run_id) is None:
        if not _plan_again(ctl, run_id, jobs):
            report.skipped += len(jobs)
            log.warning("ledger.rebuild_skipped", run_id=run_id, jobs=[j.status.job_id for j in jobs])
            return
        report.planned_runs += 1
    latest: dict[str, tuple[tuple[int, int], FoundJob]] = {}
    for job in jobs:
        m = _JOB_NAME.search(job.status.name)
        # The newest submission of a step: the highest attempt, then the highest re-plan (-r<n>).
        order = (int(m.group(3)), int(m.group(4) or 0)) if m else (0, 0)
        if m and (m.group(2) not in latest or order > latest[m.group(2)][0]):
            latest[m.group(2)] = (order, job)
    rows = {j.step: j for j in ctl.ledger.jobs_for_run(run_id)}
    for step, (_attempt, job) in latest.items():
        row = rows.get(step)
        if row is None or row.state not in UNSUBMITTED:
            continue  # the ledger already follows this step (a restored backup)
        st = job.status
        if ctl.ledger.adopt_job(run_id, step, st.name, st.job_id):
            ctl.ledger.update_job(
                run_id, step, state=st.state, exit_code=st.exit_code, reason=st.reason,
                log_stream=st.log_stream, started_at=st.started_at, stopped_at=st.stopped_at,
            )  # fmt: skip
            report.adopted_jobs += 1
            log.info("job.adopted", run_id=run_id, step=step, job_id=st.job_id, state=st.state)


def prepare_ledger(store: ObjectStore, results_root: str, ledger_path: str) -> str:
    """Before the ledger is opened: 'existing' (a file is there), 'restored' (from the backup) or 'new'
    (no backup: the caller rebuilds). A backup that cannot be read is logged and treated as none."""
    if ledger_path == ":memory:" or Path(ledger_path).exists():
        return "existing"
    try:
        if restore_backup(store, results_root, ledger_path):
            return "restored"
    except (WorkerError, LocationError) as exc:
        log.error("ledger.restore_failed", error=str(exc))
    return "new"
