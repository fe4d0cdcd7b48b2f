"""Mergeable partial results: everything a report needs, as sums and histograms.

A report is a pure function of one `Accumulators` (plus the run's context: which sections, the BED-derived
constants). Every field is a sum over records or over finished chromosomes, so the results of disjoint
parts of one input (e.g. one job per contig) combine with `merge` into the same report the whole input
gives. Medians, modes and deviations are only computed at render time, from the merged histograms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from worker.engine import kernel as k

U64 = (1 << 64) - 1


@dataclass
class Histogram:
    """value -> count for non-negative integer values: a dense array plus a dict for rare huge values."""

    dense: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sparse: dict[int, int] = field(default_factory=dict)

    def add_dense(self, counts: np.ndarray) -> None:
        # Only up to the last non-zero count: the kernel's histograms are 64 Ki entries of which a few
        # hundred are used, and copying the zero tail would touch 512 KiB per histogram for nothing.
        nz = np.flatnonzero(counts)
        if nz.shape[0] == 0:
            return
        counts = counts[: int(nz[-1]) + 1]
        if counts.shape[0] > self.dense.shape[0]:
            grown = np.zeros(counts.shape[0], dtype=np.int64)
            grown[: self.dense.shape[0]] = self.dense
            self.dense = grown
        self.dense[: counts.shape[0]] += counts

    def add(self, value: int, count: int = 1) -> None:
        self.sparse[value] = self.sparse.get(value, 0) + count

    def merge(self, other: Histogram) -> None:
        self.add_dense(other.dense)
        for value, count in other.sparse.items():
            self.add(value, count)

    def items(self) -> list[tuple[int, int]]:
        """(value, count) pairs with count > 0, ascending by value."""
        merged: dict[int, int] = {}
        nz = np.flatnonzero(self.dense)
        for v, c in zip(nz.tolist(), self.dense[nz].tolist(), strict=True):
            merged[v] = c
        for v, c in self.sparse.items():
            if c:
                merged[v] = merged.get(v, 0) + c
        return sorted(merged.items())

    def to_json(self) -> dict[str, int]:
        return {str(v): c for v, c in self.items()}

    @classmethod
    def from_json(cls, data: dict[str, int]) -> Histogram:
        h = cls()
        for v, c in data.items():
            h.add(int(v), int(c))
        return h


@dataclass
class Accumulators:
    """Partial results of one or more disjoint parts of an input."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(k.N_COUNTS, dtype=np.int64))
    aln: np.ndarray = field(default_factory=lambda: np.zeros((3, k.N_ALN), dtype=np.int64))
    read_length: list[Histogram] = field(default_factory=lambda: [Histogram(), Histogram(), Histogram()])
    insert_size: Histogram = field(default_factory=Histogram)
    wgs_depth: Histogram = field(default_factory=Histogram)
    cap_depth: Histogram = field(default_factory=Histogram)
    genome_bases: int = 0  # sum of lengths of visited chromosomes
    bases_on_target: int = 0
    bases_on_buffer: int = 0
    targets_hit: int = 0
    target_buffers_hit: int = 0
    high_coverage_non_target: int = 0
    # Q9 bookkeeping. The high-coverage scan of a chromosome of length L reads the word at index L, left
    # there by earlier chromosomes. `stale_tail[L] = (word, overwritten)` is what this part leaves at index
    # L (overwritten: a longer chromosome cleared and rewrote it; else only buffer bits were OR-ed in);
    # `stale_pending` lists (L, bits OR-ed at L within this part) for scans whose word depends on earlier
    # parts. `merge` resolves them in input order; `stale_hits()` resolves the rest against zeros.
    stale_tail: dict[int, tuple[int, bool]] = field(default_factory=dict)
    stale_pending: list[tuple[int, int]] = field(default_factory=list)

    def stale_hits(self) -> int:
        """High-coverage hits at index L still pending: nothing earlier, so the word is just the bits."""
        return sum(1 for _, bits in self.stale_pending if bits >= 20)

    def merge(self, other: Accumulators) -> Accumulators:
        """Add `other` into self (in place) and return self.

        Order matters only for Q9: `other` must cover records that come after self's in the input (parts
        merged in contig order); every other field is a plain sum.
        """
        resolved = 0
        for length, bits in other.stale_pending:
            before = self.stale_tail.get(length)
            if before is None:
                self.stale_pending.append((length, bits))
            elif before[1]:
                resolved += int((before[0] | bits) >= 20)
            else:
                self.stale_pending.append((length, before[0] | bits))
        for length, (word, overwritten) in other.stale_tail.items():
            before = self.stale_tail.get(length)
            if overwritten or before is None:
                self.stale_tail[length] = (word, overwritten)
            else:
                self.stale_tail[length] = (before[0] | word, before[1])
        self.high_coverage_non_target += resolved
        self.counts += other.counts
        self.aln += other.aln
        for mine, theirs in zip(self.read_length, other.read_length, strict=True):
            mine.merge(theirs)
        self.insert_size.merge(other.insert_size)
        self.wgs_depth.merge(other.wgs_depth)
        self.cap_depth.merge(other.cap_depth)
        self.genome_bases += other.genome_bases
        self.bases_on_target += other.bases_on_target
        self.bases_on_buffer += other.bases_on_buffer
        self.targets_hit += other.targets_hit
        self.target_buffers_hit += other.target_buffers_hit
        self.high_coverage_non_target += other.high_coverage_non_target
        return self

    def count(self, index: int) -> int:
        return int(self.counts[index]) & U64

    def aln_value(self, group: int, index: int) -> int:
        return int(self.aln[group, index]) & U64

    def to_json(self) -> dict[str, object]:
        """A plain-JSON form, so partial results can travel between jobs."""
        return {
            "counts": [int(v) for v in self.counts],
            "aln": [[int(v) for v in row] for row in self.aln],
            "read_length": [h.to_json() for h in self.read_length],
            "insert_size": self.insert_size.to_json(),
            "wgs_depth": self.wgs_depth.to_json(),
            "cap_depth": self.cap_depth.to_json(),
            "genome_bases": self.genome_bases,
            "bases_on_target": self.bases_on_target,
            "bases_on_buffer": self.bases_on_buffer,
            "targets_hit": self.targets_hit,
            "target_buffers_hit": self.target_buffers_hit,
            "high_coverage_non_target": self.high_coverage_non_target,
            "stale_tail": [
                [length, word, overwritten] for length, (word, overwritten) in self.stale_tail.items()
            ],
            "stale_pending": [list(p) for p in self.stale_pending],
        }

    @classmethod
    def from_json(cls, data: dict) -> Accumulators:
        acc = cls(
            counts=np.array(data["counts"], dtype=np.int64),
            aln=np.array(data["aln"], dtype=np.int64),
            read_length=[Histogram.from_json(h) for h in data["read_length"]],
            insert_size=Histogram.from_json(data["insert_size"]),
            wgs_depth=Histogram.from_json(data["wgs_depth"]),
            cap_depth=Histogram.from_json(data["cap_depth"]),
        )
        for name in (
            "genome_bases",
            "bases_on_target",
            "bases_on_buffer",
            "targets_hit",
            "target_buffers_hit",
            "high_coverage_non_target",
        ):
            setattr(acc, name, int(data[name]))
        acc.stale_tail = {int(n): (int(w), bool(o)) for n, w, o in data.get("stale_tail", [])}
        acc.stale_pending = [(int(n), int(b)) for n, b in data.get("stale_pending", [])]
        return acc
