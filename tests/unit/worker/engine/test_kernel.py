"""The kernel on hand-built BAM records: CG long-CIGAR records, malformed records, uint64 wrap."""

from __future__ import annotations

import struct

import pytest

from worker.engine import kernel as k
from worker.engine.engine import Engine, EngineConfig
from worker.engine.errors import BadInputError
from worker.engine.source import Header

HEADER = Header(("ctg",), (100_000,))


def record(pos: int, cigar: list[tuple[int, int]], l_seq: int, flag: int = 0, aux: bytes = b"") -> bytes:
    name = b"r\x00"
    cig = b"".join(struct.pack("<I", (length << 4) | op) for op, length in cigar)
    seq = b"\x11" * ((l_seq + 1) // 2)
    qual = bytes([30]) * l_seq
    body = struct.pack("<iiBBHHHiiii", 0, pos, len(name), 60, 0, len(cigar), flag, l_seq, -1, -1, 0)
    body += name + cig + seq + qual + aux
    return struct.pack("<i", len(body)) + body


def run(data: bytes, **cfg) -> Engine:
    engine = Engine(EngineConfig(**cfg), HEADER, "test.bam")
    engine.feed(iter([data[:7], data[7:]]))  # also exercises a record spanning two chunks
    engine.finish()
    return engine


def test_long_cigar_from_cg_tag() -> None:
    n = 35_000  # 70,000 ops: more than a BAM CIGAR field holds
    real = [(0, 1), (1, 1)] * n
    l_seq = 2 * n
    cg = (
        b"CGBI"
        + struct.pack("<I", len(real))
        + b"".join(struct.pack("<I", (ln << 4) | op) for op, ln in real)
    )
    placeholder = [(4, l_seq), (3, n)]
    e = run(record(100, placeholder, l_seq, aux=cg))
    acc = e.acc
    assert acc.aln_value(0, k.A_B_INS) == n
    assert acc.aln_value(0, k.A_B_ALIGNED) == l_seq
    assert acc.aln_value(0, k.A_R_SOFT) == 0
    assert dict(acc.wgs_depth.items())[1] == n


def test_malformed_record_is_bad_input() -> None:
    bad = struct.pack("<i", 8) + b"\x00" * 8
    with pytest.raises(BadInputError, match="malformed BAM record"):
        run(bad)
    inconsistent = bytearray(record(10, [(0, 10)], 10))
    struct.pack_into("<i", inconsistent, 20, 1000)  # l_seq far beyond the record
    with pytest.raises(BadInputError, match="malformed BAM record"):
        run(bytes(inconsistent))


def test_record_cut_at_end_of_stream_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="ends inside a record"):
        run(record(10, [(0, 10)], 10)[:-3])


def test_eqx_cigar_with_nm_wraps_like_uint64() -> None:
    nm = b"NMC" + bytes([1])
    e = run(record(10, [(7, 9), (8, 1)], 10, aux=nm))
    # no M bases: matched = 0 - (NM - D) wraps around 2**64
    assert e.acc.aln_value(0, k.A_B_MATCHED) == (1 << 64) - 1
    assert e.acc.aln_value(0, k.A_B_MISM) == 1


def _patched(data: bytes, offset: int, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<i", out, offset, value)
    return bytes(out)


GOOD = record(10, [(0, 10)], 10)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        # HTSlib's checks, in its order; the offsets are of the 4-byte block_size + 32 fixed bytes
        (record(20, [(0, 12)], 10), "CIGAR and sequence lengths differ"),
        (record(20, [(0, 4), (2, 2), (0, 5)], 10), "CIGAR and sequence lengths differ"),
        (_patched(record(20, [(0, 10)], 10), 4, 1), "reference id 1 outside the header's 1 contigs"),
        (_patched(record(20, [(0, 10)], 10), 4, -2), "reference id -2 outside"),
        (_patched(record(20, [(0, 10)], 10), 24, 1), "mate reference id 1 outside"),
    ],
)
def test_records_htslib_refuses(data: bytes, words: str) -> None:
    for cfg in ({}, {"wgs": False}, {"alignment": False}):  # with coverage the tid check comes first
        with pytest.raises(BadInputError, match=f"number 2: {words}"):
            run(GOOD + data, **cfg)


def test_read_name_length_0_is_refused() -> None:
    body = struct.pack("<iiBBHHHiiii", 0, 20, 0, 60, 0, 1, 0, 10, -1, -1, 0)
    body += struct.pack("<I", 10 << 4) + b"\x11" * 5 + bytes([30]) * 10
    with pytest.raises(BadInputError, match="number 2: read name length 0"):
        run(GOOD + struct.pack("<i", len(body)) + body)


def test_records_htslib_accepts() -> None:
    unmapped = record(20, [(0, 12)], 10, flag=4)  # the CIGAR check is for mapped records only
    no_seq = record(30, [(0, 12)], 0)  # ... with a SEQ (l_seq > 0)
    e = run(GOOD + unmapped + no_seq)
    assert e.acc.counts[k.C_TOTAL] == 3
