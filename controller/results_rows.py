"""The results table's source: the summary rows under `<results root>/rows/`, the durable record each
summary job writes (`rows/<run id>.json`), never the ledger, which may be newer than the results it
would describe (a host lost, a ledger restored from an older backup or started empty).

`RowIndex.refresh()` lists rows/ once and reads only row objects it has not seen (by key and ETag), so a
flush with 10,000 rows costs one LIST (ten pages on S3) and a GET per new row; the first refresh after a
start reads them all, on a few threads. The newest version per inbox key wins, never the run that finished
last: by S3's event sequencer when both rows carry one (S3 documents it as the order of a key's events:
left-pad the shorter hex string with zeros, then compare), otherwise by the event time; then the latest
`written_at` (a retry of the same version), then the row's key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from core.locations import Location, parse_location
from core.logs import get_logger
from core.objectstore import ObjectInfo, ObjectStore

ROWS_DIR = "rows/"


@dataclass(frozen=True)
class _Seen:
    etag: str
    size: int
    row: dict[str, Any] | None  # None: not a JSON object (logged once, left out of the table)


def _sequencer(row: Mapping[str, Any]) -> str | None:
    value = str(row.get("s3_sequencer") or "").strip().upper()
    return value if value and all(c in "0123456789ABCDEF" for c in value) else None


def is_newer(a: Mapping[str, Any], a_where: str, b: Mapping[str, Any], b_where: str) -> bool:
    """Whether row `a` describes a newer version of its key than row `b` (the table shows the newer)."""
    seq_a, seq_b = _sequencer(a), _sequencer(b)
    if seq_a and seq_b and seq_a.lstrip("0") != seq_b.lstrip("0"):
        width = max(len(seq_a), len(seq_b))
        return seq_a.rjust(width, "0") > seq_b.rjust(width, "0")
    return _tie_order(a, a_where) > _tie_order(b, b_where)


def _tie_order(row: Mapping[str, Any], where: str) -> tuple[str, str, str]:
    return (str(row.get("event_time") or ""), str(row.get("written_at") or ""), where)


class RowIndex:
    def __init__(
        self,
        store: ObjectStore,
        results_root: str,
        *,
        read_threads: int = 8,
        annotate: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    ) -> None:
        self.store = store
        # Columns the controller adds to a row read back (the QC verdict): the summary job's row object
        # is the durable record and never carries them itself.
        self.annotate = annotate
        self.results_root = results_root
        self.read_threads = read_threads
        self._seen: dict[str, _Seen] = {}
        self.log = get_logger(component="controller")
        self.reads = 0  # GETs of row objects since start (benchmarks/controller.py reports it)

    def refresh(self) -> list[dict[str, Any]]:
        """The latest row per inbox key, ordered by inbox key. Raises WorkerError/LocationError when
        rows/ cannot be listed or a new row cannot be read (the caller retries on its next flush)."""
        listing: dict[str, ObjectInfo] = {}
        for info in self.store.list(rows_prefix(self.results_root)):
            if str(info.location).endswith(".json"):
                listing[str(info.location)] = info
        fresh = [
            info
            for where, info in listing.items()
            if (seen := self._seen.get(where)) is None or (seen.etag, seen.size) != (info.etag, info.size)
        ]
        if fresh:
            with ThreadPoolExecutor(max_workers=self.read_threads, thread_name_prefix="rows-read") as pool:
                for info, row in zip(fresh, pool.map(self._read, fresh), strict=True):
                    self._seen[str(info.location)] = _Seen(info.etag, info.size, row)
        for gone in set(self._seen) - set(listing):
            del self._seen[gone]
        best: dict[str, tuple[str, dict[str, Any]]] = {}
        for where, seen in self._seen.items():
            if seen.row is None:
                continue
            key = str(seen.row.get("inbox_key") or where.rsplit("/", 1)[-1].removesuffix(".json"))
            if key not in best or is_newer(seen.row, where, best[key][1], best[key][0]):
                best[key] = (where, seen.row)
        return [best[k][1] for k in sorted(best)]

    def all_rows(self) -> list[dict[str, Any]]:
        """Every row read so far (each version's run), as of the last refresh."""
        return [seen.row for seen in self._seen.values() if seen.row is not None]

    def _read(self, info: ObjectInfo) -> dict[str, Any] | None:
        self.reads += 1
        data = self.store.read_bytes(info.location)
        try:
            row = json.loads(data)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            self.log.warning(
                "table.row_skipped", row=str(info.location), reason="not a JSON object; rewrite or delete it"
            )
            return None
        if self.annotate is not None:
            row.update(self.annotate(row))
        return row


def rows_prefix(results_root: str) -> Location:
    """`<results root>/rows/` (parsed when used: a controller may be built before its root is known)."""
    return parse_location(results_root, allow_prefix=True).join(ROWS_DIR)


def load_rows(store: ObjectStore, results_root: str) -> list[dict[str, Any]]:
    """Every row under rows/ (for a ledger rebuilt from the results store), read on a few threads."""
    index = RowIndex(store, results_root)
    index.refresh()
    return index.all_rows()
