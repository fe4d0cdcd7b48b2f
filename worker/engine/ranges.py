"""Decompressed record bytes between two BGZF virtual offsets of a local BAM: one contig's records.

The same strict reader as a whole-file run (bgzf.py), started at a block boundary instead of the file's
start: a (compressed offset << 16 | offset in the block) virtual offset from the index says where.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from worker.engine.bgzf import EOF_BLOCK, BgzfError, _block_size, _inflate, iter_chunks


class _Window:
    """A file read from `start` up to (not including) `stop`, as iter_blocks reads a stream."""

    def __init__(self, fh: BinaryIO, start: int, stop: int) -> None:
        fh.seek(start)
        self.fh = fh
        self.left = stop - start

    def read(self, n: int) -> bytes:
        data = self.fh.read(min(n, self.left))
        self.left -= len(data)
        return data


def header_end(path: str, first_record: int) -> int | None:
    """The compressed offset where a BAM header's BGZF blocks end, from the first record's virtual offset:
    that record's block when it starts the block, else the end of the block it starts in (the header's
    tail shares it). None when the block there is unreadable (the whole-file reader then says why)."""
    cbeg, within = first_record >> 16, first_record & 0xFFFF
    if not within:
        return cbeg
    with open(path, "rb") as fh:
        fh.seek(cbeg)
        head = fh.read(18)
    if len(head) < 18:
        return None
    try:
        return cbeg + _block_size(head, 0, cbeg)
    except BgzfError:
        return None


def has_eof_block(path: str) -> bool:
    """The whole-file reader refuses a BAM without the EOF marker; a range reader must too."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < len(EOF_BLOCK):
            return False
        fh.seek(size - len(EOF_BLOCK))
        return fh.read() == EOF_BLOCK


def range_chunks(path: str, begin: int, end: int | None, threads: int = 1) -> Iterator[bytes | memoryview]:
    """Record bytes from virtual offset `begin` to `end` (None: to the end of the file, EOF block checked).

    Chunks follow iter_chunks' contract (with threads > 1, valid only until the next one is requested).
    """
    cbeg, skip = begin >> 16, begin & 0xFFFF
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        cend, uend = (size, 0) if end is None else (end >> 16, end & 0xFFFF)
        if cend > size or cbeg > cend:
            raise BgzfError("truncated", f"index range {begin}-{end} lies past the end of the file ({size})")
        if cbeg < cend:
            window = _Window(fh, cbeg, cend)
            for chunk in iter_chunks(window, threads=threads, require_eof=end is None):
                if skip:
                    if len(chunk) <= skip:
                        skip -= len(chunk)
                        continue
                    chunk = memoryview(chunk)[skip:]
                    skip = 0
                yield chunk
        if uend:
            # the block holding `end` contributes only its first `uend` bytes
            yield _block_head(fh, cend, size)[skip:uend]


def _block_head(fh: BinaryIO, offset: int, size: int) -> bytes:
    fh.seek(offset)
    head = fh.read(18)
    if len(head) < 18:
        raise BgzfError("truncated", f"file ends inside a BGZF block at offset {offset}")
    bsize = _block_size(head, 0, offset)
    data = head + fh.read(bsize - 18)
    if len(data) < bsize:
        raise BgzfError("truncated", f"file ends inside a BGZF block at offset {offset}")
    isize = struct.unpack_from("<I", data, bsize - 4)[0]
    if isize > 1 << 16:
        raise BgzfError("corrupt", f"BGZF block at offset {offset} declares {isize} uncompressed bytes")
    return _inflate(memoryview(data), 0, bsize, offset)
