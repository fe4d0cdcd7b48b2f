"""A strict BGZF reader: decompressed bytes out, or a clear error for damaged input.

alignstats (through HTSlib) treats read errors as end of input (Q11): a truncated BAM yields partial
numbers, a CRC-corrupt block is skipped silently, a missing EOF block only warns — all with exit 0. This
reader refuses all three instead (`BgzfError`), so a damaged object never produces a plausible-looking
report. Inflate runs on a small thread pool (zlib and ctypes release the GIL) next to the kernel; the
system libdeflate is used when present (as HTSlib does), zlib otherwise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import threading
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

BGZF_MAGIC = b"\x1f\x8b\x08\x04"
EOF_BLOCK = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
# Memory in flight: `threads` + 1 reusable output buffers (one per batch being inflated, one for the
# chunk the consumer holds) and the compressed reads they point into (64 KiB each: below glibc's mmap
# threshold, so they recycle heap memory instead of growing it). Chunks of 256 KiB keep this near 1 MB;
# per-chunk overhead (a kernel call, a pool hand-off) stays ~0.1 s over case e's 4,000 chunks.
_READ_SIZE = 1 << 16
_CHUNK_TARGET = 1 << 18
MAX_ISIZE = 1 << 16  # BGZF blocks hold at most 64 KiB uncompressed (SAM spec §4.1)
_CHUNK_CAPACITY = _CHUNK_TARGET + MAX_ISIZE  # a batch closes at the first block reaching the target


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


Batch = list[tuple[int, bytes, int, int]]  # (file offset, buffer, offset in buffer, block size)


def _inflate_batch(blocks: Batch, out: bytearray | None = None) -> bytes | memoryview:
    """Inflate a run of blocks (worker thread; zlib and ctypes calls release the GIL).

    With libdeflate the data goes straight into `out` when given (a recycled buffer; the result is a
    view of it), else into a new buffer; zlib always returns new bytes.
    """
    if _LIBDEFLATE is not None:
        return _LIBDEFLATE.inflate_batch(blocks, out)
    return b"".join(_inflate(memoryview(buf), o, bsize, off) for off, buf, o, bsize in blocks)


class _Libdeflate:
    """libdeflate (the system library HTSlib also uses, when present) through ctypes: 2-3x faster
    than zlib for inflate and CRC32. Each batch is inflated straight into one output buffer."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        lib.libdeflate_alloc_decompressor.restype = ctypes.c_void_p
        lib.libdeflate_alloc_decompressor.argtypes = []
        lib.libdeflate_deflate_decompress.restype = ctypes.c_int
        lib.libdeflate_deflate_decompress.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_size_t),
        ]
        lib.libdeflate_crc32.restype = ctypes.c_uint32
        lib.libdeflate_crc32.argtypes = [ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t]
        self.local = threading.local()  # a decompressor is not thread-safe: one per thread

    def _decompressor(self) -> int:
        d = getattr(self.local, "d", None)
        if d is None:
            d = self.local.d = self.lib.libdeflate_alloc_decompressor()
            if not d:
                raise MemoryError("libdeflate_alloc_decompressor failed")
        return d

    def inflate_batch(self, blocks: Batch, out: bytearray | None = None) -> memoryview:
        d = self._decompressor()
        sizes = [struct.unpack_from("<II", buf, o + bsize - 8) for _, buf, o, bsize in blocks]
        total = sum(isize for _, isize in sizes)
        if out is None or len(out) < total:
            out = bytearray(total)
        out_addr = ctypes.addressof((ctypes.c_char * len(out)).from_buffer(out)) if out else 0
        actual = ctypes.c_size_t()
        pos = 0
        for (off, buf, o, bsize), (crc, isize) in zip(blocks, sizes, strict=True):
            xlen = struct.unpack_from("<H", buf, o + 10)[0]
            src = ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value + o + 12 + xlen
            clen = bsize - 20 - xlen
            if isize:
                rc = self.lib.libdeflate_deflate_decompress(
                    d, src, clen, out_addr + pos, isize, ctypes.byref(actual)
                )
                if rc != 0 or actual.value != isize:
                    raise BgzfError(
                        "corrupt", f"BGZF block at offset {off} does not inflate (libdeflate {rc})"
                    )
                if self.lib.libdeflate_crc32(0, out_addr + pos, isize) != crc:
                    raise BgzfError("corrupt", f"CRC32 checksum mismatch in BGZF block at offset {off}")
            elif crc != 0:
                raise BgzfError("corrupt", f"CRC32 checksum mismatch in BGZF block at offset {off}")
            pos += isize
        return memoryview(out)[:total]


def _load_libdeflate() -> _Libdeflate | None:
    if os.environ.get("ALIGNBATCH_NO_LIBDEFLATE"):
        return None
    name = ctypes.util.find_library("deflate")
    if not name:
        return None
    try:
        return _Libdeflate(ctypes.CDLL(name))
    except (OSError, AttributeError):
        return None


_LIBDEFLATE = _load_libdeflate()


def iter_blocks(stream: BinaryIO, prefix: bytes = b"", require_eof: bool = True) -> Iterator[Batch]:
    """Split the stream into batches of whole BGZF blocks (~256 KiB uncompressed each), checking framing.

    Each entry is (file offset, buffer, offset of the block in the buffer, block size). Raises BgzfError
    for a stream that ends inside a block or lacks the EOF marker block.
    """
    pending = bytes(prefix)
    pos = 0  # parse position in pending
    file_off = 0  # file offset of pending[0]
    batch: Batch = []
    batch_size = 0
    last_block_empty = False
    eof = False
    while True:
        if not eof and len(pending) - pos < (1 << 17):
            data = stream.read(_READ_SIZE)
            if data:
                pending = pending[pos:] + data
                file_off += pos
                pos = 0
            else:
                eof = True
        view = memoryview(pending)
        n = len(pending)
        progressed = False
        while n - pos >= 18:
            bsize = _block_size(view, pos, file_off + pos)
            if n - pos < bsize:
                break
            isize = struct.unpack_from("<I", view, pos + bsize - 4)[0]
            if isize > MAX_ISIZE:
                raise BgzfError(
                    "corrupt",
                    f"BGZF block at offset {file_off + pos} declares {isize} uncompressed bytes "
                    f"(at most {MAX_ISIZE})",
                )
            last_block_empty = isize == 0
            batch.append((file_off + pos, pending, pos, bsize))
            batch_size += isize
            pos += bsize
            progressed = True
            if batch_size >= _CHUNK_TARGET:
                yield batch
                batch = []
                batch_size = 0
        if eof and not progressed:
            if batch:
                yield batch
                batch = []
            if n - pos:
                raise BgzfError(
                    "truncated",
                    f"file ends inside a BGZF block at offset {file_off + pos} ({n - pos} bytes left over)",
                )
            if require_eof and not last_block_empty:
                raise BgzfError("no_eof", "the BGZF end-of-file marker block is missing")
            return


def iter_chunks(
    stream: BinaryIO, prefix: bytes = b"", threads: int = 2, require_eof: bool = True
) -> Iterator[bytes | bytearray | memoryview]:
    """Yield decompressed data in chunks of about 256 KiB, in order; raise BgzfError on any damage.

    `prefix` holds bytes already read from the stream (format sniffing on stdin). With threads > 1,
    `threads` worker threads inflate the next batches into `threads` + 1 recycled buffers while the
    consumer works on the current one, so memory stays fixed whatever the input size; a chunk is then
    only valid until the next one is requested (its buffer is refilled): consume it in place and copy
    what must outlive it. `require_eof=False` is for a byte range of a file (the caller checked the
    file's own end-of-file block).
    """
    if threads <= 1:
        for batch in iter_blocks(stream, prefix, require_eof):
            yield _inflate_batch(batch)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bgzf-inflate") as pool:
        free: list[bytearray] = []
        pending: deque[tuple[Future[bytes | memoryview], bytearray]] = deque()
        try:
            for batch in iter_blocks(stream, prefix, require_eof):
                out = free.pop() if free else bytearray(_CHUNK_CAPACITY)
                pending.append((pool.submit(_inflate_batch, batch, out), out))
                if len(pending) > threads:
                    fut, out = pending.popleft()
                    yield fut.result()
                    free.append(out)  # the consumer asked for more: it is done with this one
            while pending:
                fut, out = pending.popleft()
                yield fut.result()
        finally:
            for fut, _ in pending:
                fut.cancel()
