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


@pytest.mark.parametrize("key", ["a\nb.bam", "tab\there.bam", "nul\x00.bam", "esc\x1b[31m.bam"])
def test_control_characters_are_rejected_before_any_io(ctl, key: str) -> None:
    assert ctl.handle_event(inbox_event(ctl, key)) == "ignored"
    [run] = ctl.ledger.runs()
    assert run.state == "rejected" and "control character" in (run.reason or "")


def test_a_surprise_while_planning_rejects_that_object_and_acks_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import controller.intake
    from tests.support.fakes import ImmediateExecutor, ListSource, burst, local_controller

    real = controller.intake.build_plan

    def build_plan(admission, ctx, **kw):  # a planner bug that only one key reaches
        if admission.obj.key == "s1.bam":
            raise KeyError("no such tier")
        return real(admission, ctx, **kw)

    monkeypatch.setattr(controller.intake, "build_plan", build_plan)
    (tmp_path / "inbox").mkdir()
    source = ListSource([])
    c = local_controller(tmp_path, ImmediateExecutor(), source)
    source.pending = ListSource(burst(c.cfg, 3)).pending
    result = c.poll()
    assert (result.acked, result.left) == (3, 0)
    runs = {r.key: r for r in c.ledger.runs()}
    assert runs["s1.bam"].state == "rejected" and "KeyError" in (runs["s1.bam"].reason or "")
    assert runs["s0.bam"].state == runs["s2.bam"].state == "active"


def test_a_surprise_handling_one_message_leaves_only_that_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from controller.intake import Intake
    from tests.support.fakes import ImmediateExecutor, ListSource, burst, local_controller

    real = Intake.handle_event

    def handle_event(self, ev):
        if ev.key == "s1.bam":
            raise RuntimeError("a bug")
        return real(self, ev)

    monkeypatch.setattr(Intake, "handle_event", handle_event)
    (tmp_path / "inbox").mkdir()
    source = ListSource([])
    c = local_controller(tmp_path, ImmediateExecutor(), source)
    source.pending = ListSource(burst(c.cfg, 3)).pending
    result = c.poll()
    assert (result.acked, result.left) == (2, 1)
    assert [m.message_id for m in source.released] == ["1"]
    assert sorted(r.key for r in c.ledger.runs()) == ["s0.bam", "s2.bam"]
