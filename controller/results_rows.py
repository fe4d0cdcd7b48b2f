"""The results table's source: the summary rows under `<results root>/rows/`, the durable record each
summary job writes (`rows/<run id>.json`), never the ledger, which may be newer than the results it
would describe (a host lost, a ledger restored from an older backup or started empty).

`RowIndex.refresh()` lists rows/ once and reads only row objects it has not seen (by key and ETag), so a
flush with 10,000 rows costs one LIST (ten pages on S3) and a GET per new row; the first refresh after a
start reads them all, on a few threads. The latest row per inbox key wins: the newest object event
(`event_time`), then the latest `written_at` (a retry of the same version), then the row's key.
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


def row_order(row: Mapping[str, Any], where: str) -> tuple[str, str, str]:
    """Sort key of a row among the rows of one inbox key: the larger one is the table's."""
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
        best: dict[str, tuple[tuple[str, str, str], dict[str, Any]]] = {}
        for where, seen in self._seen.items():
            if seen.row is None:
                continue
            key = str(seen.row.get("inbox_key") or where.rsplit("/", 1)[-1].removesuffix(".json"))
            order = row_order(seen.row, where)
            if key not in best or order > best[key][0]:
                best[key] = (order, seen.row)
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
