"""The strict BGZF reader: intact data round-trips, damage is refused with a specific kind."""

from __future__ import annotations

import io
import struct
import zlib

import pytest

from worker.engine import bgzf
from worker.engine.bgzf import EOF_BLOCK, BgzfError, iter_chunks


@pytest.fixture(autouse=True, params=["libdeflate", "zlib"])
def backend(request, monkeypatch):
    """Run every test with the system libdeflate (when installed) and with plain zlib."""
    if request.param == "zlib":
        monkeypatch.setattr(bgzf, "_LIBDEFLATE", None)
    elif bgzf._LIBDEFLATE is None:
        pytest.skip("libdeflate not installed")
    return request.param


def block(data: bytes) -> bytes:
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    cdata = comp.compress(data) + comp.flush()
    bsize = len(cdata) + 25
    header = (
        b"\x1f\x8b\x08\x04"
        + b"\x00" * 4
        + b"\x00\xff"
        + struct.pack("<H", 6)
        + b"BC"
        + struct.pack("<HH", 2, bsize)
    )
    return header + cdata + struct.pack("<II", zlib.crc32(data), len(data))


def read_all(raw: bytes, prefix_len: int = 0, threads: int = 2) -> bytes:
    # copy each chunk as it comes: with threads > 1 its buffer is refilled once the next is requested
    chunks = iter_chunks(io.BytesIO(raw[prefix_len:]), raw[:prefix_len], threads=threads)
    return b"".join([bytes(c) for c in chunks])


def test_round_trip_with_prefix() -> None:
    raw = block(b"hello ") + block(b"world" * 1000) + EOF_BLOCK
    assert read_all(raw) == b"hello " + b"world" * 1000
    assert read_all(raw, prefix_len=4) == b"hello " + b"world" * 1000
    assert read_all(raw, threads=1) == b"hello " + b"world" * 1000


def test_many_blocks_stay_in_order() -> None:
    parts = [bytes([i % 251]) * 60_000 for i in range(80)]  # ~4.8 MB: several batches in flight
    raw = b"".join(block(p) for p in parts) + EOF_BLOCK
    assert read_all(raw) == b"".join(parts)


def test_missing_eof_block() -> None:
    with pytest.raises(BgzfError) as exc:
        read_all(block(b"abc"))
    assert exc.value.kind == "no_eof"


def test_truncated() -> None:
    raw = block(b"abc" * 100) + EOF_BLOCK
    with pytest.raises(BgzfError) as exc:
        read_all(raw[:30])
    assert exc.value.kind == "truncated"


def test_crc_mismatch() -> None:
    good = block(b"abcdef" * 50)
    bad = good[:-8] + struct.pack("<I", zlib.crc32(b"x")) + good[-4:]
    with pytest.raises(BgzfError) as exc:
        read_all(bad + EOF_BLOCK)
    assert exc.value.kind == "corrupt"


def test_garbage_header() -> None:
    with pytest.raises(BgzfError) as exc:
        read_all(block(b"abc") + b"not a block at all......" + EOF_BLOCK)
    assert exc.value.kind == "corrupt"


def test_oversized_isize_is_corrupt() -> None:
    """ISIZE above 64 KiB cannot come from a BGZF writer; it would also overrun the recycled buffers."""
    good = block(b"abcdef" * 50)
    bad = good[:-4] + struct.pack("<I", (1 << 16) + 1)
    with pytest.raises(BgzfError) as exc:
        read_all(bad + EOF_BLOCK)
    assert exc.value.kind == "corrupt"
    assert "at most 65536" in str(exc.value)


def test_chunk_buffers_are_recycled() -> None:
    """With threads > 1 the reader reuses `threads` + 1 buffers, so memory does not grow with the input."""
    parts = [bytes([i % 251]) * 60_000 for i in range(80)]
    raw = b"".join(block(p) for p in parts) + EOF_BLOCK
    seen: set[int] = set()
    data = bytearray()
    for chunk in iter_chunks(io.BytesIO(raw), threads=2):
        if isinstance(chunk, memoryview):
            seen.add(id(chunk.obj))
        data += chunk
    assert bytes(data) == b"".join(parts)
    assert len(seen) <= 3
