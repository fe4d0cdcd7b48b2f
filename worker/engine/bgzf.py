"""A strict BGZF reader: decompressed bytes out, or a clear error for damaged input.

alignstats (through HTSlib) treats read errors as end of input (Q11): a truncated BAM yields partial
numbers, a CRC-corrupt block is skipped silently, a missing EOF block only warns — all with exit 0. This
reader refuses all three instead (`BgzfError`), so a damaged object never produces a plausible-looking
report. zlib releases the GIL, so `iter_chunks` can run in a background thread next to the kernel.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import BinaryIO

BGZF_MAGIC = b"\x1f\x8b\x08\x04"
EOF_BLOCK = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_READ_SIZE = 4 << 20
_CHUNK_TARGET = 2 << 20


class BgzfError(Exception):
    """Damaged BGZF input; `kind` is one of truncated, corrupt, no_eof, not_bgzf."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _block_size(buf: bytes | memoryview, o: int, offset_in_file: int) -> int:
    """Total size of the BGZF block starting at buf[o] (header must be complete)."""
    if bytes(buf[o : o + 4]) != BGZF_MAGIC:
        raise BgzfError("corrupt", f"bad BGZF block header at offset {offset_in_file}")
    xlen = struct.unpack_from("<H", buf, o + 10)[0]
    x = o + 12
    xend = x + xlen
    while x + 4 <= xend:
        si1, si2, slen = buf[x], buf[x + 1], struct.unpack_from("<H", buf, x + 2)[0]
        if si1 == 66 and si2 == 67 and slen == 2:
            return int(struct.unpack_from("<H", buf, x + 4)[0]) + 1
        x += 4 + slen
    raise BgzfError("corrupt", f"BGZF block without a BSIZE field at offset {offset_in_file}")


def _inflate(view: memoryview, o: int, bsize: int, offset_in_file: int) -> bytes:
    xlen = struct.unpack_from("<H", view, o + 10)[0]
    crc, isize = struct.unpack_from("<II", view, o + bsize - 8)
    try:
        data = zlib.decompress(view[o + 12 + xlen : o + bsize - 8], -15, max(isize, 1))
    except zlib.error as exc:
        raise BgzfError(
            "corrupt", f"BGZF block at offset {offset_in_file} does not inflate ({exc})"
        ) from None
    if len(data) != isize or zlib.crc32(data) != crc:
        raise BgzfError("corrupt", f"CRC32 checksum mismatch in BGZF block at offset {offset_in_file}")
    return data


def iter_chunks(stream: BinaryIO, prefix: bytes = b"") -> Iterator[bytes]:
    """Yield decompressed data in chunks of about 2 MB; raise BgzfError on any damage.

    `prefix` holds bytes already read from the stream (format sniffing on stdin).
    """
    pending = bytes(prefix)
    file_off = 0  # file offset of pending[0]
    out: list[bytes] = []
    out_size = 0
    last_block_empty = False
    eof = False
    while True:
        if not eof and len(pending) < (1 << 17):
            data = stream.read(_READ_SIZE)
            if data:
                pending += data
            else:
                eof = True
        o = 0
        n = len(pending)
        view = memoryview(pending)
        while n - o >= 18 and out_size < _CHUNK_TARGET:
            bsize = _block_size(view, o, file_off + o)
            if n - o < bsize:
                break
            data = _inflate(view, o, bsize, file_off + o)
            last_block_empty = not data
            if data:
                out.append(data)
                out_size += len(data)
            o += bsize
        if o:
            pending = pending[o:]
            file_off += o
        if out_size >= _CHUNK_TARGET or (eof and out):
            yield b"".join(out)
            out = []
            out_size = 0
            continue
        if eof:
            if pending:
                raise BgzfError(
                    "truncated",
                    f"file ends inside a BGZF block at offset {file_off} ({len(pending)} bytes left over)",
                )
            if not last_block_empty:
                raise BgzfError("no_eof", "the BGZF end-of-file marker block is missing")
            return
