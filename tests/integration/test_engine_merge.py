"""Splitting one input by contig and merging the partial results gives the identical report.

This is what lets a later issue spread one large BAM over several Batch array jobs: each job runs
`compute_part` on some contigs (the last one also takes the unplaced '*' records), ships
`Accumulators.to_json()`, and a final step merges and renders.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.engine.accumulators import Accumulators
from worker.engine.cli import parse_args
from worker.engine.run import compute_part, open_input, render_report, report_context


def whole_and_split(workdir: Path, argv: list[str], groups: list[list[int]], monkeypatch) -> tuple[str, str]:
    monkeypatch.chdir(workdir)
    opts = parse_args(argv)
    inp = open_input(opts)
    header = inp.header
    assert header is not None
    n_ref = len(header.names)
    inp.close()
    whole = compute_part(parse_args(argv), list(range(n_ref)), unplaced=True)
    merged = Accumulators()
    for i, contigs in enumerate(groups):
        part = compute_part(parse_args(argv), contigs, unplaced=i == len(groups) - 1)
        # partial results travel as JSON between jobs
        merged.merge(Accumulators.from_json(json.loads(json.dumps(part.to_json()))))
    from worker.engine.run import load_beds

    targets, mask, _ = load_beds(opts, header)
    ctx = report_context(opts, 0, header, targets, mask)
    return render_report(whole, ctx), render_report(merged, ctx)


@pytest.mark.parametrize(
    "argv",
    [
        ["-C", "-i", "i_edge.bam"],
        ["-C", "-O", "-b", "20", "-i", "i_edge.bam"],
        ["-C", "-M", "-D", "-i", "i_edge.bam"],
        ["-C", "-m", "nmask.bed", "-i", "h_source.bam"],
        # capture: the Q9 stale word at index chrom_len crosses part boundaries and is resolved in merge
        ["-t", "i_edge_targets.bed", "-i", "i_edge.bam"],
        ["-t", "i_edge_targets.bed", "-b", "20", "-O", "-i", "i_edge.bam"],
        # -p: alignment and coverage halves of the kernel on two threads
        ["-t", "i_edge_targets.bed", "-p", "-i", "i_edge.bam"],
    ],
    ids=["C", "C_O_b20", "C_M_D", "C_m", "t", "t_b20_O", "t_p"],
)
def test_split_by_contig_merges_to_same_report(data_dir: Path, argv: list[str], monkeypatch) -> None:
    whole, merged = whole_and_split(
        data_dir, argv, [[0], [1], [2]] if "i_edge.bam" in argv else [[0]], monkeypatch
    )
    assert merged == whole


def test_split_matches_the_plain_run_golden(data_dir: Path, monkeypatch) -> None:
    """The per-contig path (pysam region reads) equals the streaming path byte for byte."""
    _, merged = whole_and_split(data_dir, ["-C", "-i", "i_edge.bam"], [[2, 1], [0]], monkeypatch)
    golden = (data_dir / "golden" / "i_edge_bam__C.json").read_text()
    golden = golden.replace('"InputFileSize": 2264', '"InputFileSize": 0')
    assert merged == golden


def test_split_capture_matches_golden_with_q9(data_dir: Path, monkeypatch) -> None:
    """i_edge__t has one high-coverage hit only from stale memory (Q9); three parts still give it."""
    _, merged = whole_and_split(
        data_dir, ["-t", "i_edge_targets.bed", "-i", "i_edge.bam"], [[0], [1], [2]], monkeypatch
    )
    golden = (data_dir / "golden" / "i_edge__t.json").read_text()
    golden = golden.replace('"InputFileName": "i_edge.sam"', '"InputFileName": "i_edge.bam"')
    golden = golden.replace('"InputFileSize": 6261', '"InputFileSize": 0')
    assert merged == golden


@pytest.mark.parametrize(
    ("bed", "golden_name"), [("targets.bed", "d_capture__t"), ("targets_quirky.bed", "d_capture__tquirky")]
)
def test_split_capture_refdata(refdata: Path, bed: str, golden_name: str, monkeypatch) -> None:
    """Capture + WGS + alignment on a multi-contig BAM in four parts equals the golden report."""
    whole, merged = whole_and_split(
        refdata, ["-t", bed, "-i", "d_capture.bam"], [[0], [1], [2], [3, 4]], monkeypatch
    )
    assert merged == whole
    golden = (refdata / "golden" / f"{golden_name}.json").read_text()
    size = (refdata / "d_capture.bam").stat().st_size
    assert merged == golden.replace(f'"InputFileSize": {size}', '"InputFileSize": 0')


def test_accumulators_json_round_trip_is_lossless() -> None:
    acc = Accumulators()
    acc.counts[0] = -1  # a wrapped uint64 counter
    acc.read_length[0].add((1 << 64) - 5)
    acc.wgs_depth.add_dense(__import__("numpy").array([5, 0, 2]))
    again = Accumulators.from_json(json.loads(json.dumps(acc.to_json())))
    assert again.to_json() == acc.to_json()
