"""CRAM references that cannot silently mismatch (#14): a CRAM's @SQ M5 values against the configured
reference's sequence MD5s (computed once per reference, cached), before anything is submitted."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pysam
import pytest

from controller.config import PipelineConfig, PipelineOptions, local_config
from controller.events import ObjectEvent
from controller.ledger import Ledger
from controller.metrics import Metrics
from controller.references import ReferenceCheck, fasta_m5s
from controller.service import Controller
from core.locations import parse_location
from core.objectstore import LocalObjectStore
from tests.support.fakes import ImmediateExecutor


def _cram(data_dir: Path, ref: Path, out: Path) -> Path:
    with (
        pysam.AlignmentFile(str(data_dir / "h_source.bam")) as src,
        pysam.AlignmentFile(str(out), "wc", template=src, reference_filename=str(ref)) as dst,
    ):
        for n, rec in enumerate(src):
            if n >= 200:
                break
            dst.write(rec)
    return out


@pytest.fixture()
def setup(tmp_path: Path, data_dir: Path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    refs = tmp_path / "refs"
    refs.mkdir()
    good = refs / "ref.fa"
    good.write_text((data_dir / "ref.fa").read_text())
    # Same contig names, one base of chr2 changed: decoding against it would silently give wrong bases.
    lines = good.read_text().splitlines()
    at = lines.index(next(x for x in lines if x.startswith(">chr2"))) + 1
    lines[at] = ("A" if lines[at][0] != "A" else "C") + lines[at][1:]
    other = refs / "other.fa"
    other.write_text("\n".join(lines) + "\n")
    _cram(data_dir, good, inbox / "good.cram")
    _cram(data_dir, other, inbox / "other.cram")
    return tmp_path, good


def _controller(tmp_path: Path, reference: Path) -> tuple[Controller, ImmediateExecutor]:
    cfg = local_config(tmp_path)
    cfg = replace(cfg, pipeline=PipelineConfig(default=PipelineOptions(reference_fasta=str(reference))))
    executor = ImmediateExecutor()
    ctl = Controller(cfg, ledger=Ledger(tmp_path / "state.db"), executor=executor, source=None,
                     metrics=Metrics())  # fmt: skip
    return ctl, executor


def _event(ctl: Controller, key: str) -> ObjectEvent:
    size = (Path(ctl.cfg.inbox_root) / key).stat().st_size
    return ObjectEvent(
        ctl.cfg.inbox_root, key, size, f"{key}-1", None, "ObjectCreated:Put", datetime.now(UTC)
    )


def test_fasta_digests_are_the_md5_of_each_upper_case_sequence(setup) -> None:
    tmp_path, good = setup
    text = good.read_text()
    first = text.split(">")[1].split("\n", 1)
    expected = hashlib.md5("".join(first[1].split()).upper().encode()).hexdigest()
    store = LocalObjectStore()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("controller.references.CHUNK", 7)  # lines and names split across reads
        digests = fasta_m5s(store, parse_location(str(good)), good.stat().st_size)
    assert digests[first[0].split()[0]] == expected
    header = pysam.AlignmentFile(str(tmp_path / "inbox" / "good.cram"), "rc", check_sq=False).header
    assert {s["SN"]: s["M5"] for s in header.to_dict()["SQ"]} == digests


def test_a_cram_whose_reference_differs_is_rejected_naming_the_contig(setup) -> None:
    tmp_path, good = setup
    ctl, executor = _controller(tmp_path, good)
    for key in ("good.cram", "other.cram"):
        assert ctl.handle_event(_event(ctl, key)) == "accepted"
    ctl.submit_ready()
    runs = {r.key: r for r in ctl.ledger.runs()}
    assert runs["good.cram"].state == "active"
    assert all(j.job_id for j in ctl.ledger.jobs_for_run(runs["good.cram"].run_id))
    bad = runs["other.cram"]
    assert bad.state == "rejected" and "M5 differs for chr2" in (bad.reason or "")
    assert "reference_fasta" in (bad.reason or "")  # says what to fix
    assert not any(j.job_id for j in ctl.ledger.jobs_for_run(bad.run_id))
    assert all("other" not in name for name in executor.submitted)


def test_the_reference_is_digested_once_and_cached_in_the_results_store(setup, monkeypatch) -> None:
    tmp_path, good = setup
    calls: list[str] = []
    import controller.references as refs

    real = refs.fasta_m5s
    monkeypatch.setattr(
        refs, "fasta_m5s", lambda store, loc, size: calls.append(str(loc)) or real(store, loc, size)
    )
    check = ReferenceCheck(LocalObjectStore(), str(tmp_path / "results"))
    assert check.mismatch(str(tmp_path / "inbox" / "good.cram"), str(good)) is None
    assert check.mismatch(str(tmp_path / "inbox" / "good.cram"), str(good)) is None
    again = ReferenceCheck(LocalObjectStore(), str(tmp_path / "results"))  # a restarted controller
    assert again.mismatch(str(tmp_path / "inbox" / "other.cram"), str(good)) is not None
    assert len(calls) == 1
    assert list((tmp_path / "results" / "ledger" / "reference-m5").glob("*.json"))
