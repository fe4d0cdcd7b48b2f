"""The driver: feeds record bytes to the kernel, handles chromosome boundaries, returns accumulators.

Per-chromosome work is separable: a chromosome's coverage is tallied into histograms as soon as the
input moves on, so the only memory that scales with the genome is the one depth array (4 bytes x the
longest contig + 1; the extra word reproduces alignstats' one-past-the-end read, Q9).
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from worker.engine import kernel as k
from worker.engine import memory
from worker.engine.accumulators import Accumulators
from worker.engine.bed import BedFile
from worker.engine.errors import BadInputError
from worker.engine.source import Header


@dataclass(frozen=True)
class EngineConfig:
    min_mapq: int = 0
    required_flags: int = 0
    excluded_flags: int = 0
    min_baseq: int = 0
    alignment: bool = True
    wgs: bool = True
    capture: bool = False
    keep_dups: bool = False
    overlap: int = k.OVERLAP_NONE
    targets: BedFile | None = None
    mask: BedFile | None = None
    section_records: int = 1024  # the tool's read section (-n / 16): its order check restarts there

    @property
    def coverage(self) -> bool:
        return self.wgs or self.capture


def prefetch(chunks: Iterator[bytes], depth: int = 1) -> Iterator[bytes]:
    """Run the producer (BGZF framing, pysam) in a thread, `depth` chunks ahead of the kernel.

    One queued chunk is enough to keep the kernel busy (inflate runs on its own pool); every extra one is
    another chunk of memory in flight.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        q.put(chunk, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # handed to the consumer, re-raised there
            q.put(exc)

    t = threading.Thread(target=produce, name="bgzf-reader", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


class Engine:
    """Processes one stream of records (one whole input, or one part of a split run)."""

    def __init__(
        self,
        config: EngineConfig,
        header: Header,
        input_path: str,
        warn: Callable[[str], None] | None = None,
        threads: int = 1,
    ) -> None:
        self.config = config
        self.header = header
        self.input_path = input_path
        self.warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
        self.acc = Accumulators()
        # records before this stream in the input (a part of a parallel run): error messages number
        # records as the whole run would
        self.record_base = 0
        n_ref = len(header.lengths)
        longest = max(header.lengths) if header.lengths else 0
        self.depth = np.zeros(longest + 1 if config.coverage else 1, dtype=np.uint32)
        memory.small_pages(self.depth)  # before its first touch: see memory.py
        self.params = k.new_params()
        p = self.params
        p[k.P_MINQ] = config.min_mapq
        p[k.P_REQ_FLAGS] = config.required_flags
        p[k.P_EXCL_FLAGS] = config.excluded_flags
        p[k.P_MIN_BASEQ] = config.min_baseq
        p[k.P_DO_ALN] = int(config.alignment)
        p[k.P_DO_COV] = int(config.coverage)
        p[k.P_DO_CAP] = int(config.capture)
        p[k.P_KEEP_DUPS] = int(config.keep_dups)
        p[k.P_OVERLAP] = config.overlap
        p[k.P_SECTION] = max(config.section_records, 1)
        p[k.P_N_REF] = n_ref
        # Per-base increments are only needed when a base can be skipped (-b, -O/-M) or its target state
        # read (capture); otherwise a difference array and one prefix sum per chromosome give the same
        # depths for a fraction of the writes.
        self.depth_diff = config.coverage and not (
            config.capture or config.min_baseq or config.overlap != k.OVERLAP_NONE
        )
        p[k.P_DEPTH_DIFF] = int(self.depth_diff)
        self.state = k.new_state()
        # With -p (threads=2) and both alignment and coverage metrics, the two halves of the kernel
        # (they share no state) run on two threads over the same buffers (the kernel releases the GIL):
        # lower wall time on an idle machine, slightly more CPU. The coverage half keeps its own state
        # (current chromosome) and counters; its copies of the record counters are dropped at the end.
        self._pool: ThreadPoolExecutor | None = None
        self.cov_params = self.params
        self.cov_state = self.state
        self.cov_counts = self.acc.counts
        # (only with kernels that release the GIL: the ahead-of-time ones would just take turns)
        if config.alignment and config.coverage and threads > 1 and k.RELEASES_GIL:
            self.cov_params = self.params.copy()
            self.cov_params[k.P_DO_ALN] = 0
            self.params[k.P_DO_COV] = 0
            self.cov_state = k.new_state()
            self.cov_counts = np.zeros_like(self.acc.counts)
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alignment-kernel")
        self.len_hist = np.zeros((3, k.LEN_HIST_SIZE), dtype=np.int64)
        self.ins_hist = np.zeros(k.INS_HIST_SIZE, dtype=np.int64)
        self.ov = np.zeros((k.OV_CAPACITY, 2), dtype=np.int64)
        self.scratch = k.new_scratch()
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        self.targets = config.targets.by_tid(n_ref) if config.targets else [empty] * n_ref
        self.any_targets = bool(config.targets and len(config.targets))
        self.mask = config.mask.by_tid(n_ref) if config.mask else [empty] * n_ref
        self._warned = False
        # Q9: distinct contig lengths, and which of those indices a longer chromosome of this part has
        # already cleared (then the word there is known locally).
        self._lengths = sorted(set(header.lengths))
        self._overwritten: set[int] = set()

    # --- main loop ----------------------------------------------------------------------------------
    def feed(self, chunks: Iterator[bytes]) -> None:
        """Run the kernel over the chunks; each is used in place and not kept past its iteration."""
        carry = b""
        for chunk in chunks:
            start = 0
            if carry:
                # Finish the record that spans the chunk boundary from a small joined buffer, so the
                # chunk itself is used in place (no 1-2 MB copy per chunk).
                head = carry + chunk[: max(0, 4 - len(carry))]
                if len(head) < 4:
                    carry = head
                    continue
                need = int.from_bytes(head[:4], "little", signed=True) + 4 - len(carry)
                if need > len(chunk):
                    carry += chunk
                    continue
                record = np.frombuffer(carry + chunk[:need], dtype=np.uint8)
                if self._run(record, 0) != record.shape[0]:
                    raise AssertionError("spanning record not consumed")  # pragma: no cover
                start = need
            buf = np.frombuffer(chunk, dtype=np.uint8)
            # Always read-only (as a spanning record or a zlib chunk, which are bytes, already are), so
            # only one specialisation of the kernel is ever loaded: each costs ~1 MB of private memory.
            buf.flags.writeable = False
            off = self._run(buf, start)
            carry = bytes(chunk[off:])  # a copy: the chunk's buffer may be refilled once we move on
            self._check_order_warning()
        if carry:
            raise BadInputError(
                self.input_path,
                f"truncated BAM: the data ends inside a record ({len(carry)} bytes left over)",
                "upload the complete file again",
            )
        self._check_order_warning()

    def _run(self, buf: np.ndarray, off: int) -> int:
        """Run the kernel(s) over buf from off; return the offset of the first incomplete record."""
        if self._pool is None:
            return self._run_one(buf, off, self.params, self.state, self.acc.counts)
        # alignment half on the helper thread, coverage half here (chromosome changes need Python)
        fut = self._pool.submit(self._run_one, buf, off, self.params, self.state, self.acc.counts)
        try:
            end_cov = self._run_one(buf, off, self.cov_params, self.cov_state, self.cov_counts)
        finally:
            end_aln = fut.result()
        if end_aln != end_cov:  # pragma: no cover - both walk the same record chain
            raise AssertionError(f"kernel halves disagree ({end_aln} != {end_cov})")
        return end_aln

    def _run_one(self, buf: np.ndarray, off: int, params, state, counts) -> int:
        n = buf.shape[0]
        while True:
            status, off = k.process_records(
                buf,
                off,
                n,
                params,
                state,
                counts,
                self.acc.aln,
                self.len_hist,
                self.ins_hist,
                self.ov,
                self.depth,
                self.scratch,
            )
            if status == k.NEED_MORE:
                return off
            if status == k.CHROM_CHANGE:
                self._change_chromosome(int(state[k.S_NEW_TID]))
            elif status == k.OVERFLOW_FULL:
                self._drain_overflow()
            elif status == k.BAD_RECORD:
                number = self.record_base + int(counts[k.C_TOTAL]) + 1
                why = _bad_record_reason(buf, off, int(state[k.S_BAD_KIND]), len(self.header.lengths))
                raise BadInputError(
                    self.input_path,
                    f"malformed BAM record (number {number}: {why})",
                    "the file is damaged; re-create it with samtools or re-upload it",
                )

    def finish(self) -> Accumulators:
        """Finish the current chromosome and return the accumulated results."""
        if self.config.coverage and self.cov_state[k.S_CUR_TID] >= 0:
            self._finish_chromosome(int(self.cov_state[k.S_CUR_TID]))
            self.cov_state[k.S_CUR_TID] = -1
        self._drain_overflow()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            self.cov_counts[[k.C_TOTAL, k.C_UNFILTERED, k.C_FILTERED]] = 0
            self.acc.counts += self.cov_counts
            self.cov_counts = self.acc.counts
        if self.config.capture:
            for length in self._lengths:
                word = int(self.depth[length]) if length < self.depth.shape[0] else 0
                if length in self._overwritten:
                    self.acc.stale_tail[length] = (word, True)
                elif word:
                    self.acc.stale_tail[length] = (word, False)
        for g in range(3):
            self.acc.read_length[g].add_dense(self.len_hist[g])
        self.acc.insert_size.add_dense(self.ins_hist)
        # fresh (lazily zeroed) arrays rather than writing zeros over 2 MiB that were mostly never touched
        self.len_hist = np.zeros(self.len_hist.shape, dtype=np.int64)
        self.ins_hist = np.zeros(self.ins_hist.shape, dtype=np.int64)
        return self.acc

    def _check_order_warning(self) -> None:
        if self._warned or not self.state[k.S_WARNED]:
            return
        self._warned = True
        s = self.state
        if s[k.S_WARN_KIND] == 1:
            detail = f"tid {s[k.S_WARN_TID]}, pos {s[k.S_WARN_PREV] + 1} > {s[k.S_WARN_CUR] + 1}"
        else:
            detail = f"tid {s[k.S_WARN_PREV]} > {s[k.S_WARN_CUR]}"
        self.warn(
            "[AlignStats WARNING] Record not in coordinate-sorted order. Results may not be accurate: "
            + detail
        )

    def _drain_overflow(self) -> None:
        n = int(self.state[k.S_OV_N])
        for kind, value in self.ov[:n].tolist():
            if kind == k.OV_KIND_INSERT:
                self.acc.insert_size.add(value)
            else:
                self.acc.read_length[kind].add(value & ((1 << 64) - 1))
        self.state[k.S_OV_N] = 0

    # --- chromosomes --------------------------------------------------------------------------------
    def _change_chromosome(self, new_tid: int) -> None:
        cur = int(self.cov_state[k.S_CUR_TID])
        if cur >= 0:
            self._finish_chromosome(cur)
        self.cov_state[k.S_CUR_TID] = new_tid
        self.cov_state[k.S_CUR_LEN] = 0
        if 0 <= new_tid < len(self.header.lengths):
            self._start_chromosome(new_tid)

    def _start_chromosome(self, tid: int) -> None:
        length = self.header.lengths[tid]
        self.cov_state[k.S_CUR_LEN] = length
        self.depth[:length] = 0
        self.acc.genome_bases += length
        for other in self._lengths:
            if other >= length:
                break
            self._overwritten.add(other)
        if not self.config.capture:
            return
        ts, te = self.targets[tid]
        on_t, on_b = k.set_target_bits(self.depth, length, ts, te)
        ms, me = self.mask[tid]
        for s, e in zip(ms.tolist(), me.tolist(), strict=True):
            mt, mb = k.count_states(self.depth, s, min(e, length))
            on_t -= mt
            on_b -= mb
        self.acc.bases_on_target += on_t
        self.acc.bases_on_buffer += on_b

    def _finish_chromosome(self, tid: int) -> None:
        length = self.header.lengths[tid]
        depth = self.depth
        if self.depth_diff:
            k.prefix_sum(depth, length)
        ms, me = self.mask[tid]
        for s, e in zip(ms.tolist(), me.tolist(), strict=True):
            if e >= s:
                depth[s : min(e + 1, length)] = 0
        if self.config.wgs:
            hist = np.zeros(int(k.max_depth(depth, 0, length)) + 1, dtype=np.int64)
            k.depth_histogram(depth, 0, length, hist)
            self.acc.wgs_depth.add_dense(hist)
        if self.config.capture:
            ts, te = self.targets[tid]
            if ts.shape[0]:
                hist = np.zeros(int(k.max_depth(depth, 0, length)) + 1, dtype=np.int64)
                hit, bhit = k.target_tally(depth, length, ts, te, hist)
                self.acc.cap_depth.add_dense(hist)
                self.acc.targets_hit += int(hit)
                self.acc.target_buffers_hit += int(bhit)
            if self.any_targets:
                hits, tail = k.high_coverage_non_target(depth, length, ts, te)
                self.acc.high_coverage_non_target += int(hits)
                if tail:
                    word = int(depth[length])
                    if length in self._overwritten:
                        self.acc.high_coverage_non_target += int(word >= 20)
                    else:
                        self.acc.stale_pending.append((length, word))


def _bad_record_reason(buf: np.ndarray, off: int, kind: int, n_ref: int) -> str:
    """The failed HTSlib check in words, read back from the record (only ever on the error path)."""

    def i32(at: int) -> int:
        return int.from_bytes(bytes(buf[off + at : off + at + 4]), "little", signed=True)

    if kind == k.BAD_NAME:
        return "read name length 0, HTSlib requires at least its NUL"
    if kind == k.BAD_CIGAR:
        return f"CIGAR and sequence lengths differ, sequence length {i32(20)}"
    if kind == k.BAD_TID:
        return f"reference id {i32(4)} outside the header's {n_ref} contigs"
    if kind == k.BAD_MTID:
        return f"mate reference id {i32(24)} outside the header's {n_ref} contigs"
    return "sizes do not add up"
