"""Intake: event outcomes for odd keys, duplicates, rejected objects, index events."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fakes import event_count, inbox_event

ODD_KEYS = ["a b+c.bam", "ünïcødé/样本.bam", "x" * 200 + ".bam", "deep/" * 20 + "s.cram.bam"]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_odd_but_legal_keys_are_accepted(ctl, key: str) -> None:
    assert ctl.handle_event(inbox_event(ctl, key)) == "accepted"
    assert ctl.handle_event(inbox_event(ctl, key)) == "duplicate"
    [run] = ctl.ledger.runs()
    assert run.key == key and run.input_uri == str(Path(ctl.cfg.inbox_root) / key)


@pytest.mark.parametrize("key", ["../escape.bam", "a/./b.bam", "a//b.bam", "y" * 300 + ".bam"])
def test_unsafe_keys_are_rejected_visibly(ctl, key: str) -> None:
    assert ctl.handle_event(inbox_event(ctl, key)) == "ignored"
    [run] = ctl.ledger.runs()
    assert run.state == "rejected" and run.reason and key[:20] in run.reason
    assert ctl.ledger.jobs_for_run(run.run_id) == []
    assert ctl.handle_event(inbox_event(ctl, key)) == "duplicate"


def test_cram_without_reference_is_rejected(ctl) -> None:
    assert ctl.handle_event(inbox_event(ctl, "x.cram")) == "ignored"
    assert "reference_fasta" in (ctl.ledger.runs()[0].reason or "")


def test_index_event_then_bam_skips_index_step(ctl) -> None:
    assert ctl.handle_event(inbox_event(ctl, "s.bam.bai")) == "index_recorded"
    assert ctl.handle_event(inbox_event(ctl, "s.bam")) == "accepted"
    run = ctl.ledger.runs()[0]
    assert [j.step for j in ctl.ledger.jobs_for_run(run.run_id)] == ["alignstats", "summary"]
    assert ctl.handle_event(inbox_event(ctl, "notes.md")) == "ignored"
    # A new version of the same key is a new run.
    assert ctl.handle_event(inbox_event(ctl, "s.bam", etag="2-10")) == "accepted"
    assert event_count(ctl, "accepted") == 2
