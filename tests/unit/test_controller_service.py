"""Controller service logic on a local profile (no servers, no jobs run): event outcomes for odd keys,
duplicates, rejected objects, the RUNNABLE watchdog, cancel."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.config import local_config
from controller.daemon import build_controller
from controller.events import ObjectEvent
from controller.metrics import Metrics


@pytest.fixture()
def ctl(tmp_path: Path):
    (tmp_path / "inbox").mkdir()
    c = build_controller(local_config(tmp_path), metrics=Metrics(), with_source=False, slots=1)
    yield c
    c.executor.close(wait=False)


def ev(ctl, key: str, etag: str = "1-10") -> ObjectEvent:
    return ObjectEvent(ctl.cfg.inbox_root, key, 10, etag, None, "ObjectCreated:Put", datetime.now(UTC))


def count(ctl, outcome: str) -> float:
    return ctl.metrics.registry.get_sample_value("alignbatch_events_total", {"outcome": outcome}) or 0.0


ODD_KEYS = ["a b+c.bam", "ünïcødé/样本.bam", "x" * 200 + ".bam", "deep/" * 20 + "s.cram.bam"]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_odd_but_legal_keys_are_accepted(ctl, key: str) -> None:
    assert ctl.handle_event(ev(ctl, key)) == "accepted"
    assert ctl.handle_event(ev(ctl, key)) == "duplicate"
    [run] = ctl.ledger.runs()
    assert run.key == key and run.input_uri == str(Path(ctl.cfg.inbox_root) / key)


@pytest.mark.parametrize("key", ["../escape.bam", "a/./b.bam", "a//b.bam", "y" * 300 + ".bam"])
def test_unsafe_keys_are_rejected_visibly(ctl, key: str) -> None:
    assert ctl.handle_event(ev(ctl, key)) == "ignored"
    [run] = ctl.ledger.runs()
    assert run.state == "rejected" and run.reason and key[:20] in run.reason
    assert ctl.ledger.jobs_for_run(run.run_id) == []
    assert ctl.handle_event(ev(ctl, key)) == "duplicate"


def test_cram_without_reference_is_rejected(ctl) -> None:
    assert ctl.handle_event(ev(ctl, "x.cram")) == "ignored"
    assert "reference_fasta" in (ctl.ledger.runs()[0].reason or "")


def test_index_event_then_bam_skips_index_step(ctl) -> None:
    assert ctl.handle_event(ev(ctl, "s.bam.bai")) == "index_recorded"
    assert ctl.handle_event(ev(ctl, "s.bam")) == "accepted"
    run = ctl.ledger.runs()[0]
    assert [j.step for j in ctl.ledger.jobs_for_run(run.run_id)] == ["alignstats", "summary"]
    assert ctl.handle_event(ev(ctl, "notes.md")) == "ignored"
    # A new version of the same key is a new run.
    assert ctl.handle_event(ev(ctl, "s.bam", etag="2-10")) == "accepted"
    assert count(ctl, "accepted") == 2


def test_runnable_watchdog_and_cancel(ctl) -> None:
    ctl.handle_event(ev(ctl, "s.bam"))
    run = ctl.ledger.runs()[0]
    ctl.ledger.mark_submitted(run.run_id, "index", "J1")
    ctl.ledger.update_job(run.run_id, "index", state="RUNNABLE", now=time.time() - 7200)
    ctl.check_runnable()
    age = ctl.metrics.registry.get_sample_value("alignbatch_oldest_runnable_age_seconds")
    assert age is not None and age >= 7199
    assert "J1" in ctl._runnable_flagged
    assert ctl.cancel_run(run.run_id)
    assert ctl.ledger.get_run(run.run_id).state == "cancelled"
    assert {j.state for j in ctl.ledger.jobs_for_run(run.run_id)} == {"CANCELLED"}
    assert "runs active=0" in ctl.status_line()
