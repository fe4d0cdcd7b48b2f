"""Intake, the first stage: messages → object events → runs recorded in the ledger.

A message is acknowledged only once every event in it is committed (or deliberately ignored). For each
event: does it belong to the inbox (the Inbox strategy), is it an index (recorded: it satisfies a later
object's index step), a duplicate (the ledger's UNIQUE identity), or a new object — then it is admitted
(key checked once), probed for an index next to it, planned, and the Plan or Rejection is recorded.
"""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from controller.config import ControllerConfig
from controller.events import MalformedMessage, ObjectEvent, ObjectKind, parse_message
from controller.inbox import Inbox
from controller.index_layout import read_layout
from controller.ledger import Ledger
from controller.metrics import Metrics
from controller.model import InputObject, Plan, Rejection, run_id_for, sample_name
from controller.planner import (
    PlanContext,
    admit,
    build_plan,
    fanout_decision,
    index_candidates,
    resolve_path,
)
from controller.sources.base import EventSource, Message
from controller.stopflag import StopFlag
from core.errors import WorkerError
from core.locations import LocationError
from core.logs import get_logger
from core.objectstore import ObjectStore
from core.version import __version__


@dataclass
class PollResult:
    received: int = 0
    acked: int = 0
    left: int = 0  # not acknowledged: malformed (left for redrive) or failed transiently


class Intake:
    def __init__(
        self,
        cfg: ControllerConfig,
        *,
        ledger: Ledger,
        inbox: Inbox,
        store: ObjectStore,
        source: EventSource | None,
        metrics: Metrics,
        stopping: StopFlag,
        io_threads: int = 8,
    ) -> None:
        self.cfg, self.ledger, self.inbox, self.store = cfg, ledger, inbox, store
        self.source, self.metrics, self.stopping = source, metrics, stopping
        self.log = get_logger(component="controller")
        self.in_flight: dict[str, Message] = {}
        self._in_flight_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="controller-io")

    def poll(self, max_messages: int = 10) -> PollResult:
        """Receive one batch of messages, record their events, acknowledge what was committed."""
        result = PollResult()
        if self.stopping.is_set() or self.source is None:
            return result
        messages = self.source.receive(max_messages)
        result.received = len(messages)
        done: list[Message] = []
        left: list[Message] = []
        with self._in_flight_lock:
            for m in messages:
                self.in_flight[m.message_id] = m
        try:
            # Messages are independent (the ledger's UNIQUE identity settles duplicates), and handling one
            # is mostly waiting on S3 HEAD/LIST: handle a batch concurrently.
            for msg, ok in zip(messages, self._pool.map(self.handle_message, messages), strict=True):
                (done if ok else left).append(msg)
            if done:
                # Only now: every event of these messages is committed in the ledger.
                self.source.ack(done)
        finally:
            with self._in_flight_lock:
                for m in messages:
                    self.in_flight.pop(m.message_id, None)
            if left:
                self.source.release(left)
        result.acked, result.left = len(done), len(left)
        self.metrics.loop_ok("poll")
        return result

    def extend_in_flight(self) -> None:
        """Keep messages being processed invisible (a slow ledger or S3 must not cause a redelivery)."""
        with self._in_flight_lock:
            msgs = list(self.in_flight.values())
        if msgs and self.source is not None:
            self.source.extend(msgs, self.cfg.queue.visibility_timeout)

    def handle_message(self, msg: Message) -> bool:
        """True when the message can be deleted (all of its events are committed or deliberately ignored)."""
        try:
            parsed = parse_message(msg.body)
        except MalformedMessage as exc:
            self.metrics.events.labels(outcome="malformed").inc()
            self.log.warning(
                "event.malformed",
                message_id=msg.message_id,
                receive_count=msg.receive_count,
                reason=str(exc),
                body_prefix=msg.body[:200],
            )
            return False
        if parsed.test_event:
            self.metrics.events.labels(outcome="test_event").inc()
            self.log.info("event.test_event", message_id=msg.message_id)
            return True
        if parsed.ignored_records:
            self.metrics.events.labels(outcome="ignored").inc(parsed.ignored_records)
        for ev in parsed.events:
            try:
                self.handle_event(ev)
            except (WorkerError, OSError) as exc:
                # The object store is unreachable or the ledger could not commit: leave the message for a
                # redelivery instead of losing the event.
                self.log.error("event.failed", key=ev.key, bucket=ev.bucket, error=str(exc))
                return False
            except sqlite3.Error:
                raise  # the ledger itself is in trouble: not this message's fault, poll() decides
            except Exception as exc:
                # Anything else is about this message alone: it is left (redelivered, then the DLQ), and
                # the other messages of the batch are still acknowledged.
                self.log.error(
                    "event.failed",
                    message_id=msg.message_id,
                    key=ev.key,
                    bucket=ev.bucket,
                    error=f"{type(exc).__name__}: {exc}",
                )
                return False
        return True

    def handle_event(self, ev: ObjectEvent) -> str:
        """Record one object event; returns the outcome label counted."""
        kind = ev.kind
        outcome: str
        if not self.inbox.owns(ev.bucket, ev.key) or kind is ObjectKind.OTHER:
            outcome = "ignored"
            self.log.info(
                "event.ignored", bucket=ev.bucket, key=ev.key, reason="not a BAM/CRAM/index in the inbox"
            )
        elif kind is ObjectKind.INDEX:
            self.ledger.record_index(ev.bucket, ev.key, ev.identity_version)
            outcome = "index_recorded"
            self.log.info("event.index_recorded", bucket=ev.bucket, key=ev.key)
        elif self.ledger.run_exists(ev.bucket, ev.key, ev.identity_version):
            outcome = "duplicate"
            self.log.info("event.duplicate", bucket=ev.bucket, key=ev.key, etag=ev.etag)
        else:
            outcome = self._accept(ev)
        self.metrics.events.labels(outcome=outcome).inc()
        return outcome

    def plan_context(self, key: str) -> PlanContext:
        """What the planner needs for an inbox key: its [[pipeline.prefix]] options, paths resolved."""
        opts = self.cfg.pipeline.for_key(key)
        root = self.inbox.reference_root
        opts = replace(
            opts,
            target_bed=resolve_path(opts.target_bed, reference_root=root),
            reference_fasta=resolve_path(opts.reference_fasta, reference_root=root),
        )
        return PlanContext(
            inbox_root=self.inbox.root,
            results_root=self.cfg.results_root,
            pipeline=opts,
            tiers=self.cfg.tiers,
            pipeline_version=__version__,
            deployment=self.cfg.batch.deployment,
            inbox=self.inbox,
            share=self.cfg.fair_share.share_for(key),
            fanout=self.cfg.fanout,
        )

    def _index_present(self, ev: ObjectEvent) -> bool:
        candidates = index_candidates(ev.key)
        if self.ledger.has_index(ev.bucket, candidates):
            return True
        try:
            return self.inbox.index_present(ev.bucket, candidates, self.store)
        except LocationError:
            return False  # not a name the store can look up: let the index step make one

    def _plan(self, ev: ObjectEvent, obj: InputObject) -> tuple[InputObject, Plan | Rejection]:
        # The key is checked (once) before any I/O is attempted with it.
        admission = admit(obj, self.inbox)
        if isinstance(admission, Rejection):
            return obj, admission
        obj = replace(obj, index_present=self._index_present(ev))
        # [[pipeline.prefix]] matches the key as the results layout names it (the inbox key).
        ctx = self.plan_context(admission.inbox_key)
        admission = replace(admission, obj=obj)
        if obj.index_present and fanout_decision(obj.key, obj.size, ctx.pipeline, ctx.fanout)[0]:
            # a fan-out candidate with its index in place: the index caps the shard array
            layout = read_layout(self.store, self.inbox, ev.bucket, index_candidates(ev.key))
            admission = replace(admission, index_layout=layout)
        return obj, build_plan(admission, ctx)

    def _accept(self, ev: ObjectEvent) -> str:
        obj = InputObject(
            ev.bucket, ev.key, ev.size, ev.etag, ev.version_id, False, ev.event_time, ev.sequencer
        )
        plan: Plan | Rejection
        try:
            obj, plan = self._plan(ev, obj)
        except (WorkerError, OSError):
            raise  # the store could not be asked (transient): the message is left for a redelivery
        except Exception as exc:
            # A key or a [[pipeline.prefix]] option no rule foresaw must not fail the other messages of
            # the batch (they were committed, and would be received again): the object is rejected,
            # visibly, with the error as its reason.
            self.log.error(
                "event.plan_failed", key=ev.key, bucket=ev.bucket, error=f"{type(exc).__name__}: {exc}"
            )
            plan = Rejection(
                run_id_for(ev.bucket, ev.key, ev.identity_version),
                sample_name(ev.key),
                f"{ev.bucket}/{ev.key}",
                ev.key,
                f"{ev.key!r} could not be planned ({type(exc).__name__}: {exc}); rename the object or "
                "fix the [pipeline] options for its prefix and upload it again",
            )
        if isinstance(plan, Rejection):
            if self.ledger.create_rejected(obj, plan):
                self.log.warning("event.rejected", run_id=plan.run_id, key=ev.key, reason=plan.reason)
            return "ignored"
        if not self.ledger.create_run(obj, plan):
            self.log.info("event.duplicate", run_id=plan.run_id, key=ev.key)
            return "duplicate"
        self.metrics.runs.labels(outcome="created").inc()
        self.log.info(
            "run.created",
            run_id=plan.run_id,
            sample=plan.sample,
            key=ev.key,
            size=ev.size,
            steps=[str(j.step) for j in plan.jobs],
            shards=plan.shards,
        )
        if plan.fanout_declined:
            self.log.info("run.fanout_declined", run_id=plan.run_id, key=ev.key, reason=plan.fanout_declined)
        return "accepted"
