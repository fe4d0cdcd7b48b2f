"""The pure pieces of benchmarks/genome_scale.py's generator: records HTSlib accepts, sorted, consistent.

A tiny case (scale 0.001: a 50 kbp main contig, 20,000 records) written as an uncompressed BAM and read
back with pysam; no large data, well under a second.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pysam = pytest.importorskip("pysam")

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def gs():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("genome_scale", BENCH / "genome_scale.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["genome_scale"] = mod  # its dataclasses look their module up
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


def write_case(gs, path: Path, seed: int = 5) -> None:
    case = gs.Case("tiny", 0.001, 20_000)
    parts = [gs.bam_header(gs.contig_lengths(case.scale), case, seed)]
    gs.generate_records(case, seed, parts.append, window_pairs=1000)
    # an uncompressed BAM is BGZF level 0; HTSlib also reads the raw stream, but pysam wants a file
    with pysam.BGZFile(str(path), "wb") as fh:
        fh.write(b"".join(parts))


def test_reg2bin_matches_the_spec_examples(gs):
    beg = np.array([0, 16383, 16384, 0, 1 << 26, 100])
    end = np.array([1, 16384, 16385, 16385, (1 << 26) + 1, 1 << 29])
    assert gs.reg2bin(beg, end).tolist() == [4681, 4681, 4682, 585, 4681 + (1 << 12), 0]


def test_every_cigar_covers_the_read(gs):
    for kind, ops in enumerate(gs.CIGARS):
        assert sum(ln for op, ln in ops if op in (0, 1, 4)) == gs.READ_LEN, gs.cigar_string(kind)
    assert abs(sum(gs.CIGAR_P) - 1) < 1e-9


def test_records_are_valid_sorted_and_paired(gs, tmp_path):
    bam = tmp_path / "tiny.bam"
    write_case(gs, bam)
    with pysam.AlignmentFile(str(bam), "rb") as af:
        recs = list(af.fetch(until_eof=True))
        lengths = dict(zip(af.references, af.lengths, strict=True))
    assert abs(len(recs) - 20_000) <= 4
    key = [(r.reference_id if r.reference_id >= 0 else 1 << 30, r.reference_start) for r in recs]
    assert key == sorted(key)
    by_name: dict[str, list] = {}
    for r in recs:
        assert r.query_length == gs.READ_LEN and len(r.query_qualities) == gs.READ_LEN
        assert set(r.get_tag("XP")) <= {"A"}  # padding to the fixed record size
        if not r.is_unmapped:
            assert r.reference_end <= lengths[r.reference_name]
            assert r.get_tag("NM") >= 0
            assert r.bin == gs.reg2bin(np.array([r.reference_start]), np.array([r.reference_end]))[0]
        by_name.setdefault(r.query_name, []).append(r)
    assert all(len(v) == 2 for v in by_name.values())
    flags = {"dup": 0, "half": 0, "unplaced": 0}
    for a, b in by_name.values():
        assert a.is_read1 != b.is_read1
        for r, mate in ((a, b), (b, a)):
            assert r.next_reference_start == mate.reference_start
            if mate.is_unmapped:
                assert not r.has_tag("MC")
            else:
                assert r.get_tag("MC") == mate.cigarstring
        flags["dup"] += a.is_duplicate
        flags["half"] += a.is_unmapped != b.is_unmapped
        flags["unplaced"] += a.reference_id < 0
    assert flags["dup"] and flags["half"] and flags["unplaced"]


def test_same_seed_same_bytes(gs):
    case = gs.Case("tiny", 0.001, 4_000)
    a: list[bytes] = []
    b: list[bytes] = []
    gs.generate_records(case, 3, a.append, window_pairs=500)
    gs.generate_records(case, 3, b.append, window_pairs=500)
    assert b"".join(a) == b"".join(b)
