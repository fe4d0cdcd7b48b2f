"""Where raw BAM records come from.

Every input ends up as a stream of decompressed BAM record bytes (header stripped), the form the numba
kernel reads:
- a BAM file or BAM on stdin: our strict BGZF reader (fast path, damaged files refused);
- SAM, CRAM, region queries (-r) and per-contig parts: HTSlib via pysam, re-serialised in batches into a
  small uncompressed temporary BAM and read back. The records' bytes are HTSlib's in-memory `bam1_t` data,
  exactly what alignstats sees (including the aux layout that quirk Q6 reads into).
"""

from __future__ import annotations

import os
import shutil
import struct
import sys
import tempfile
import warnings
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from worker.engine.bgzf import BGZF_MAGIC, BgzfError, _block_size, _inflate, iter_chunks
from worker.engine.budget import stated_cpus
from worker.engine.errors import BadInputError, ToolError
from worker.engine.ranges import _Window

FORMATS = ("sam", "bam", "cram")
_BATCH_RECORDS = 100_000


@dataclass(frozen=True)
class Header:
    names: tuple[str, ...]
    lengths: tuple[int, ...]

    @property
    def name_to_tid(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}


@dataclass(frozen=True)
class Region:
    tid: int
    start: int
    stop: int


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def sniff(prefix: bytes) -> str:
    """Content format: 'bam', 'cram', 'bgzf' (compressed non-BAM), or 'text'."""
    if prefix.startswith(b"CRAM"):
        return "cram"
    if prefix.startswith(BGZF_MAGIC):
        return "bgzf"
    return "text"


class _Buffered:
    """Accumulates decompressed chunks until the BAM header is complete."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buf = b""

    def need(self, n: int) -> bool:
        while len(self.buf) < n:
            try:
                self.buf += next(self.chunks)
            except StopIteration:
                return False
        return True


def split_header(chunks: Iterator[bytes]) -> tuple[Header | None, Iterator[bytes]]:
    """Parse the BAM header from decompressed chunks; (None, ...) if the data is not BAM."""
    b = _Buffered(chunks)
    if not b.need(12) or b.buf[:4] != b"BAM\x01":
        return None, iter(())
    (l_text,) = struct.unpack_from("<i", b.buf, 4)
    o = 8 + l_text
    if l_text < 0 or not b.need(o + 4):
        return None, iter(())
    (n_ref,) = struct.unpack_from("<i", b.buf, o)
    o += 4
    names: list[str] = []
    lengths: list[int] = []
    for _ in range(max(n_ref, 0)):
        if not b.need(o + 4):
            return None, iter(())
        (l_name,) = struct.unpack_from("<i", b.buf, o)
        if not b.need(o + 4 + l_name + 4):
            return None, iter(())
        names.append(b.buf[o + 4 : o + 4 + l_name].rstrip(b"\x00").decode("utf-8", "surrogateescape"))
        (length,) = struct.unpack_from("<i", b.buf, o + 4 + l_name)
        lengths.append(length)
        o += 8 + l_name
    rest = b.buf[o:]

    def body() -> Iterator[bytes]:
        if rest:
            yield rest
        yield from b.chunks

    return Header(tuple(names), tuple(lengths)), body()


def bgzf_errors(path: str, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Turn BGZF damage into the one-line BAD_INPUT error."""
    try:
        yield from chunks
    except BgzfError as exc:
        fixes = {
            "truncated": "the file is incomplete (truncated); upload the complete file again",
            "no_eof": "the file may be incomplete; re-create it with samtools or re-upload it",
        }
        what = {"truncated": "truncated BAM", "no_eof": "BAM end-of-file marker missing"}.get(
            exc.kind, "corrupt BAM block"
        )
        fix = fixes.get(exc.kind, "the file is damaged; re-create or re-upload it")
        raise BadInputError(path, f"{what} ({exc})", fix) from None


class InputFile:
    """One opened alignment input; `chunks()` yields raw record bytes."""

    def __init__(
        self, path: str, declared: str, reference: str | None, threads: int = 1, stop: int | None = None
    ) -> None:
        self.path = path
        # A BAM read only for its header (a shard): the whole-file reader reads no byte at or past this
        # compressed offset, where the header's blocks end. Its look-ahead would otherwise inflate blocks
        # beyond the header, which a shard child's sparse staged copy does not hold (worker/fanout.py).
        self.stop = stop
        self.declared = declared
        self.reference = reference
        self.threads = threads
        self.size = 0
        self._tmpdir: str | None = None
        self._stream: BinaryIO | None = None
        self._prefix = b""
        self._local_path: str | None = None  # a seekable file for pysam
        self.content = "text"
        self.header: Header | None = None
        self._raw_body: Iterator[bytes] | None = None
        self._raw_chunks: Generator[bytes, None, None] | None = None
        # chunks() comes from our BGZF reader, whose chunks are recycled buffers (valid until the next
        # one is requested): consume them directly, not through a read-ahead queue
        self.recycles_chunks = False
        self.bgzf_sam = False  # bgzipped SAM text (indexable by samtools, unlike plain SAM)
        self._open()

    # --- opening ------------------------------------------------------------------------------------
    def _open(self) -> None:
        if self.path == "-":
            self._stream = sys.stdin.buffer
            self._prefix = self._read_prefix(self._stream)
        else:
            try:
                self._stream = open(self.path, "rb")  # noqa: SIM115 - kept open while reading
            except OSError as exc:
                raise ToolError(
                    f'[E::hts_open_format] Failed to open file "{self.path}" : {exc.strerror}',
                    f'[AlignStats ERROR] Failed to open input file "{self.path}".',
                    f"{exc.strerror}",
                ) from None
            self.size = os.fstat(self._stream.fileno()).st_size
            self._prefix = self._read_prefix(self._stream)
            self._local_path = self.path
        self.content = sniff(self._prefix)
        if self.content == "bgzf" and self.path == "-" and not self._stdin_is_bam():
            # bgzipped SAM on stdin: HTSlib reads it from the spooled copy (prefix + rest of stdin)
            self.content = "sam"
            self.bgzf_sam = True
        elif self.content == "bgzf":
            # the CPUs we may run on (taskset, cpusets), not the host's: on one CPU, inflate threads only
            # add switches between them and the kernel. A stated budget (the job's vCPUs) caps them
            # too: a 1-vCPU job's helper threads cost ~15 % more CPU (futex wake-ups; c50m_r20m: +1.1 s
            # of system time in 8 s) and, under a CPU quota or beside other jobs, no wall time back.
            inflaters = max(self.threads, min(_usable_cpus(), 4, stated_cpus() or 4))
            stream: BinaryIO = self._stream
            if self.stop is not None and self.path != "-":
                stream = _Window(self._stream, len(self._prefix), self.stop)  # type: ignore[assignment]
            raw = iter_chunks(stream, self._prefix, threads=inflaters, require_eof=self.stop is None)
            chunks = bgzf_errors(self.path, raw)
            header, body = split_header(chunks)
            self._raw_chunks = chunks
            if header is not None:
                self.content = "bam"
                self.header = header
                self._raw_body = body
                self.recycles_chunks = True
                return
            self.content = "sam"  # bgzipped SAM: let HTSlib read it
            self.bgzf_sam = True
        # Like HTSlib, go by content, not by the name or -j (a SAM file named x.bam reads fine);
        # content HTSlib cannot parse fails in _open_pysam with the tool's header error.
        self._open_pysam()

    def _stdin_is_bam(self) -> bool:
        """BAM or bgzipped SAM on stdin, told apart by inflating the first non-empty block(s).

        stdin cannot be re-read, so the raw bytes read here become the prefix, which the BAM reader or
        the spooled copy for HTSlib starts with (the BGZF reader would otherwise consume blocks that a
        bgzipped SAM's spooled copy then lacks). Damage that hides the answer counts as BAM: the BGZF
        reader then reports it as for any BAM.
        """
        assert self._stream is not None
        data = self._prefix
        off = 0
        try:
            while True:
                while len(data) - off < 18 or len(data) - off < _block_size(data, off, off):
                    more = self._stream.read(1 << 16)
                    if not more:
                        return True
                    data += more
                bsize = _block_size(data, off, off)
                text = _inflate(memoryview(data), off, bsize, off)
                off += bsize
                if text:
                    return text.startswith(b"BAM\1"[: len(text)])
        except BgzfError:
            return True
        finally:
            self._prefix = data

    @staticmethod
    def _read_prefix(stream: BinaryIO) -> bytes:
        data = b""
        while len(data) < 4:
            more = stream.read(4 - len(data))
            if not more:
                break
            data += more
        return data

    def _spool_stdin(self) -> str:
        tmp = self.tmpdir()
        path = os.path.join(tmp, "stdin.dat")
        with open(path, "wb") as out:
            out.write(self._prefix)
            assert self._stream is not None
            shutil.copyfileobj(self._stream, out, 1 << 20)
        return path

    def tmpdir(self) -> str:
        if self._tmpdir is None:
            root = os.environ.get("ALIGNBATCH_SCRATCH") or None
            self._tmpdir = tempfile.mkdtemp(prefix="alignstats-", dir=root)
        return self._tmpdir

    def _open_pysam(self) -> None:
        import pysam

        if self._local_path is None:
            self._local_path = self._spool_stdin()
        if self._stream is not None and self._stream is not sys.stdin.buffer:
            self._stream.close()
            self._stream = None
        kwargs: dict[str, object] = {"threads": max(self.threads, 1)}
        if self.content == "cram" and self.reference:
            kwargs["reference_filename"] = self.reference
        # a spooled stdin has no index next to it; keep HTSlib from saying so
        previous = pysam.set_verbosity(0) if self.path == "-" else None
        try:
            with warnings.catch_warnings():
                # HTSlib itself prints the "EOF marker is absent" warning, as alignstats' HTSlib does
                warnings.simplefilter("ignore")
                # pysam refuses extra threads together with ignore_truncation=True ("Cannot add extra
                # threads"), which made -P 2 fail with 'Failed to read header'. With threads the EOF
                # check stays on, but it only warns (silenced here; HTSlib prints its own warning).
                self.af = pysam.AlignmentFile(
                    self._local_path,
                    "r",
                    check_sq=False,
                    ignore_truncation=self.threads <= 1,
                    **kwargs,
                )
        except (ValueError, OSError):
            raise ToolError(
                f'[AlignStats ERROR] Failed to read header for input file "{self.path}".',
                "Exec format error",
            ) from None
        finally:
            if previous is not None:
                pysam.set_verbosity(previous)
        self.header = Header(tuple(self.af.references), tuple(self.af.lengths))

    # --- reading ------------------------------------------------------------------------------------
    def chunks(self) -> Iterator[bytes]:
        """All records in file order."""
        if self._raw_body is not None:
            body, self._raw_body = self._raw_body, None
            return body
        return self._via_pysam(self.af.fetch(until_eof=True))

    def discard_body(self) -> None:
        """Stop the whole-file reader (a parallel run reads the records by index ranges instead)."""
        self._raw_body = None
        if self._raw_chunks is not None:
            self._raw_chunks.close()  # cancels the inflate pool's pending blocks
            self._raw_chunks = None

    def ensure_index(self) -> None:
        """-r and per-contig parts need an index (alignstats: 'Failed to read index')."""
        if self.path == "-":
            raise ToolError("[AlignStats ERROR] Cannot process regions on input alignment from stdin.")
        if self.content == "bam" and not hasattr(self, "af"):
            self._open_pysam()
        if self.bgzf_sam:
            ok = self._has_local_index()
        else:
            try:
                ok = self.af.check_index()
            except (ValueError, AttributeError):
                ok = False
        if not ok:
            raise ToolError(
                f"[E::idx_find_and_load] Could not retrieve index file for '{self.path}'",
                f'[AlignStats ERROR] Failed to read index for input file "{self.path}".',
                "No such file or directory",
            )
        if self.bgzf_sam:
            self._reopen_as_bam()

    def _has_local_index(self) -> bool:
        """The index files HTSlib looks for next to a bgzipped SAM (samtools index writes .bai/.csi)."""
        stem = os.path.splitext(self.path)[0]
        return any(os.path.exists(p + ext) for p in (self.path, stem) for ext in (".csi", ".bai"))

    def _reopen_as_bam(self) -> None:
        """pysam refuses region queries on SAM ('not available for SAM files') although HTSlib and the
        tool do them on an indexed bgzipped SAM. Copy the records (the same bam1_t bytes) into an
        uncompressed BAM in scratch, index that and query it: same records, same order."""
        import pysam

        part = os.path.join(self.tmpdir(), "regions.bam")
        with pysam.AlignmentFile(part, "wbu", template=self.af) as out:
            for rec in self.af.fetch(until_eof=True):
                out.write(rec)
        self.af.close()
        pysam.index(part, "-c")  # CSI: no 512 Mbp contig limit
        self.af = pysam.AlignmentFile(part, "rb", check_sq=False)

    def null_iterator(self, region: Region) -> bool:
        """Whether HTSlib 1.16 returns no iterator for this region (the tool then warns 'Unable to set
        iterator in region <tid>'): a BED line ending at or before its start, except for CRAM, whose
        1.16 iterator accepts any range."""
        return self.content != "cram" and region.stop < region.start

    def region_chunks(self, regions: Sequence[Region], unplaced: bool) -> Iterator[bytes]:
        """Records of each region in order (overlaps read twice), then the unplaced '*' records."""

        def records():
            for r in regions:
                name = self.af.references[r.tid]
                if r.stop > r.start:
                    yield from self.af.fetch(name, r.start, r.stop)
                elif self.content == "cram" and r.stop > 0:
                    # HTSlib 1.16's CRAM iterator (Debian 12, the tool's build) applies its overlap test
                    # pos < end && endpos > beg even when end <= beg, where newer HTSlib (pysam) returns
                    # nothing: 0-1 bp BED lines still yield the reads spanning [end, beg].
                    for rec in self.af.fetch(name, r.start, r.start + 1):
                        if rec.reference_start < r.stop:
                            yield rec
            if unplaced:
                yield from self.af.fetch("*")

        return self._via_pysam(records())

    def contig_chunks(self, contigs: Sequence[int], unplaced: bool) -> Iterator[bytes]:
        """Records of whole contigs (a part of a split run), optionally the unplaced ones."""

        def records():
            for tid in contigs:
                yield from self.af.fetch(self.af.references[tid])
            if unplaced:
                yield from self.af.fetch("*")

        return self._via_pysam(records())

    def _via_pysam(self, records: Iterator) -> Iterator[bytes]:
        import pysam

        part = os.path.join(self.tmpdir(), "part.bam")
        it = iter(records)
        done = 0  # records of earlier batches: HTSlib's refusal is then named by its record number
        while True:
            n = 0
            try:
                with pysam.AlignmentFile(part, "wbu", template=self.af) as out:
                    for rec in it:
                        out.write(rec)
                        n += 1
                        if n >= _BATCH_RECORDS:
                            break
            except OSError as exc:
                # HTSlib refused record done + n + 1 (SAM parse errors, the record checks of BAM via -r)
                raise BadInputError(
                    self.path,
                    f"unreadable alignment data at record {done + n + 1} ({exc})",
                    "the file is damaged; re-create or re-upload it",
                ) from None
            done += n
            if n == 0:
                return
            with open(part, "rb") as fh:
                _, body = split_header(iter_chunks(fh, threads=1))
                yield from body
            if n < _BATCH_RECORDS:
                return

    def close(self) -> None:
        if self._stream is not None and self._stream is not sys.stdin.buffer:
            self._stream.close()
        if hasattr(self, "af"):
            self.af.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
