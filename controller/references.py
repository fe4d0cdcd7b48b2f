"""CRAM references that cannot silently mismatch (#14).

A CRAM stores its reads against reference sequences it names by MD5 (`@SQ M5:`); decoded against a
different FASTA with the same contig names, HTSlib may produce wrong bases without an error. Before a
CRAM run is submitted, its header's M5 values are compared with the configured reference's: the MD5 of
each sequence (upper-case residues, no line breaks — SAM spec §1.3), computed once per reference object
(URI + ETag) and cached beside the ledger backup, `<results>/ledger/reference-m5/<sha256>.json`. A contig
whose M5 differs, or that the reference lacks, makes the run rejected with the contigs named.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Mapping

from core.errors import WorkerError
from core.locations import Location, LocationError, parse_location
from core.logs import get_logger
from core.objectstore import ObjectStore

# The header container comes first; real headers (thousands of contigs) fit well within this.
HEADER_BYTES = 4 * 1024 * 1024
CHUNK = 8 * 1024 * 1024
log = get_logger(component="references")


def cram_m5s(store: ObjectStore, loc: Location) -> dict[str, str]:
    """{contig: M5} from a CRAM's header (contigs without an M5 tag are left out). Reads the first
    HEADER_BYTES only. Raises ValueError when the header cannot be parsed."""
    import pysam

    head = store.read_range(loc, 0, HEADER_BYTES)
    fd, path = tempfile.mkstemp(suffix=".cram")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(head)
        verbosity = pysam.set_verbosity(0)  # a truncated copy has no index and no EOF block: expected
        try:
            with pysam.AlignmentFile(path, "rc", check_sq=False) as cram:
                sq = cram.header.to_dict().get("SQ", [])
        except (OSError, ValueError) as exc:
            raise ValueError(f"{loc}: CRAM header unreadable ({exc})") from exc
        finally:
            pysam.set_verbosity(verbosity)
    finally:
        os.unlink(path)
    return {str(s["SN"]): str(s["M5"]).lower() for s in sq if s.get("SN") and s.get("M5")}


def fasta_m5s(store: ObjectStore, loc: Location, size: int) -> dict[str, str]:
    """{contig: MD5 of its sequence} of a FASTA, read in CHUNK ranges (a human reference is ~3 GB)."""
    out: dict[str, str] = {}
    name: str | None = None
    digest = hashlib.md5(usedforsecurity=False)
    rest = b""

    def line(raw: bytes) -> None:
        nonlocal name, digest
        if raw.startswith(b">"):
            if name is not None:
                out[name] = digest.hexdigest()
            name = raw[1:].split(None, 1)[0].decode() if raw[1:].strip() else ""
            digest = hashlib.md5(usedforsecurity=False)
        elif name is not None:
            digest.update(raw.strip().upper())

    for start in range(0, size, CHUNK):
        data = rest + store.read_range(loc, start, min(CHUNK, size - start))
        lines = data.split(b"\n")
        rest = lines.pop()
        for raw in lines:
            line(raw)
    if rest:
        line(rest)
    if name is not None:
        out[name] = digest.hexdigest()
    return out


class ReferenceCheck:
    """Compares a CRAM's @SQ M5 values with its reference's; reference digests cached (memory, store)."""

    def __init__(self, store: ObjectStore, results_root: str) -> None:
        self.store, self.results_root = store, results_root
        self._cache: dict[tuple[str, str], Mapping[str, str]] = {}
        self._lock = threading.Lock()

    def reference(self, uri: str) -> Mapping[str, str]:
        loc = parse_location(uri)
        info = self.store.head(loc)
        if info is None:
            raise ValueError(f"reference {uri} not found; fix [pipeline] reference_fasta")
        ident = (uri, info.etag or str(info.size))
        with self._lock:
            if ident in self._cache:
                return self._cache[ident]
            name = hashlib.sha256("\0".join(ident).encode()).hexdigest()
            cached = parse_location(self.results_root, allow_prefix=True).join(
                f"ledger/reference-m5/{name}.json"
            )
            try:
                digests: Mapping[str, str] = json.loads(self.store.read_bytes(cached))
            except (WorkerError, LocationError, ValueError):
                digests = fasta_m5s(self.store, loc, info.size)
                try:
                    self.store.write_bytes(cached, json.dumps(digests, sort_keys=True).encode())
                except (WorkerError, LocationError) as exc:  # the cache is an optimisation only
                    log.warning("reference.cache_write_failed", reference=uri, error=str(exc))
                log.info("reference.digested", reference=uri, contigs=len(digests))
            self._cache[ident] = digests
            return digests

    def mismatch(self, cram_uri: str, reference_uri: str) -> str | None:
        """Why this CRAM cannot be decoded against this reference (the contigs named), or None."""
        cram = cram_m5s(self.store, parse_location(cram_uri))
        ref = self.reference(reference_uri)
        differ = sorted(c for c, m5 in cram.items() if c in ref and ref[c] != m5)
        missing = sorted(c for c in cram if c not in ref)
        if not differ and not missing:
            return None
        parts = []
        if differ:
            parts.append(f"M5 differs for {', '.join(differ[:10])}{' ...' if len(differ) > 10 else ''}")
        if missing:
            more = " ..." if len(missing) > 10 else ""
            parts.append(f"missing from the reference: {', '.join(missing[:10])}{more}")
        return (
            f"{cram_uri}: CRAM header does not match reference {reference_uri} ({'; '.join(parts)}); "
            "set [pipeline] reference_fasta (or the prefix's) to the FASTA the CRAM was written with"
        )
