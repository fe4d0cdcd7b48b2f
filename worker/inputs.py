"""Input planning: each input HEADed through its store; read in place, staged or streamed; companion
files placed next to it; the main input's header/EOF checked before any bulk transfer.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.errors import AccessDenied, BadInput, ObjectMissing, ScratchFull, UsageError
from core.locations import Location, LocationError, parse_location
from core.objectstore import ObjectInfo, Stores
from worker import checks
from worker.staging import Scratch, safe_name
from worker.tools import Kind, ParsedCommand, Slot, companion_suffixes, fasta_companions

Mode = Literal["auto", "stage", "stream"]
PROBE_BYTES = 1024 * 1024  # first read of a streamed input for the header check; grows if needed
MAX_PROBE_BYTES = 64 * 1024 * 1024


@dataclass
class Input:
    """An input file the tool reads: where it is, what the store says about it, where the tool sees it."""

    location: Location
    info: ObjectInfo
    display: str  # as the user gave it, pin included (for messages; the report names `report_name`)
    host_path: str | None = None  # the store's own file on this host, read in place; None: fetch it
    local_path: str | None = None  # where the tool reads it: host_path, the staged copy, or a link

    @property
    def report_name(self) -> str:
        """The name a report shows: as given, minus a `?versionId=`/`?etag=` pin, so the report of a
        pinned run is byte-identical to the unpinned one (the version is in the transfer log line)."""
        if not self.location.pinned:
            return self.display
        pin = self.location.pin
        return self.display[: -len(pin)] if self.display.endswith(pin) else str(self.location.unpinned())

    @property
    def needs_fetch(self) -> bool:
        return self.host_path is None


@dataclass(frozen=True)
class Companion:
    """A file HTSlib finds by name next to another input: `<that input's local path><suffix>`."""

    attach_to: int  # slot number of the input it belongs to
    suffix: str  # ".bai", ".crai", ".fai", ".gzi" ...
    input: Input


class InputPlanner:
    """Decisions about the inputs of one run, each location's bytes read through its own store."""

    def __init__(self, stores: Stores, log: Any, *, mode: Mode = "auto", index: str | None = None) -> None:
        self.stores = stores
        self.log = log
        self.mode = mode
        self.index = index

    @staticmethod
    def main_slot(cmd: ParsedCommand) -> Slot | None:
        if cmd.profile.stream_option:
            return cmd.slot_for(cmd.profile.stream_option)
        found = [s for s in cmd.inputs if s.kind is Kind.ALIGNMENTS]
        return found[-1] if found else None

    def resolve(self, loc: Location, display: str, what: str) -> Input:
        store = self.stores.for_location(loc)
        info = store.head(loc)
        path = store.local_path(loc)
        if info is None:
            if loc.version_id is not None:
                raise ObjectMissing(
                    f"{what} {display}: version {loc.version_id} no longer exists (or is not a version of "
                    "this key); it was deleted or expired, nothing to redo for it"
                )
            if path is None:
                raise ObjectMissing(f"{what} {display} does not exist; check the bucket and key")
            if os.path.isdir(path):
                raise BadInput(f"{what} {display} is a directory, not a file")
            raise ObjectMissing(f"{what} {display} does not exist")
        if path is not None and not os.access(path, os.R_OK):
            raise AccessDenied(f"{what} {display} is not readable (permission denied)")
        return Input(loc, info, display, host_path=path, local_path=path)

    def decide_stream(self, cmd: ParsedCommand, main_slot: Slot | None, main: Input | None) -> bool:
        mode = self.mode
        possible = (
            main_slot is not None
            and main is not None
            and main.needs_fetch
            and cmd.profile.stream_option is not None
            and not cmd.has_option("-r")
            and not self.index
        )
        if mode == "stream" and not possible:
            if cmd.has_option("-r"):
                raise UsageError(
                    "--stream is not possible with -r: region queries need the staged, indexed file"
                )
            if main is not None and not main.needs_fetch:
                self.log.info("stream_ignored", reason="the main input is a local file; it is read in place")
                return False
            raise UsageError(
                f"--stream is not possible for {os.path.basename(cmd.tool)} with these arguments"
            )
        return possible and mode != "stage"

    def check_alignments(self, scratch: Scratch, main: Input) -> tuple[checks.Format, checks.HeaderInfo]:
        store = self.stores.for_location(main.location)
        size = main.info.size
        head = store.read_range(main.location, 0, min(size, PROBE_BYTES))
        tail_bytes = min(size, checks.TAIL_BYTES)
        tail = store.read_range(main.location, -tail_bytes, tail_bytes)
        fmt = checks.detect_format(head)
        checks.check_eof(main.display, fmt, tail)
        if main.host_path is not None:
            return fmt, checks.read_header(main.display, main.host_path, fmt)
        probe = scratch.probe_path(0)
        length = len(head)
        while True:
            try:
                probe.write_bytes(head)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise ScratchFull(
                        f"{main.display}: no room on the scratch volume for the {len(head)}-byte header "
                        f"probe ({probe.parent}); give the job a larger scratch volume"
                    ) from None
                raise
            try:
                return fmt, checks.read_header(main.display, probe, fmt)
            except BadInput:
                # A header larger than the probe looks unreadable: fetch more before concluding.
                if length >= size or length >= MAX_PROBE_BYTES:
                    raise
                length = min(size, length * 8, MAX_PROBE_BYTES)
                head = store.read_range(main.location, 0, length)

    def companions(
        self, cmd: ParsedCommand, main_slot: Slot | None, main: Input | None, stream: bool
    ) -> list[Companion]:
        """Index of the main input (unless streamed) and the FASTA's .fai/.gzi when they must be placed."""
        out: list[Companion] = []
        if main is not None and main_slot is not None and not stream:
            if self.index:
                try:
                    idx_loc = parse_location(self.index)
                except LocationError as exc:
                    raise UsageError(f"--index: {exc}") from None
                suffix = idx_loc.suffix.lower()
                if suffix not in (".bai", ".csi", ".crai"):
                    suffix = ".crai" if main.location.name.lower().endswith(".cram") else ".bai"
                comp = self.resolve(idx_loc, self.index, "index (--index)")
                out.append(Companion(main_slot.number, suffix, comp))
            elif main.needs_fetch and cmd.profile.name == "alignstats":
                found = self._find_companion(main)
                if found is not None:
                    out.append(Companion(main_slot.number, found[0], found[1]))
            if cmd.has_option("-r") and not out and not self._local_index_exists(main):
                raise BadInput(
                    f"{main.display}: -r needs an index next to it (.bai/.csi/.crai) or --index URI; "
                    "create one with alignbatch-index"
                )
        for slot in cmd.inputs:
            if slot.kind is not Kind.FASTA or slot.is_stdio:
                continue
            for suffix in fasta_companions(slot.location):
                comp_loc = slot.location.add_suffix(suffix)
                store = self.stores.for_location(comp_loc)
                # A 403 is S3's answer for a missing key to a role without list rights: missing.
                info = self._head_candidate(comp_loc)
                if info is None:
                    raise BadInput(
                        f"{slot.text}: reference index {comp_loc} is missing; create it with samtools faidx"
                    )
                if store.local_path(comp_loc) is None:  # a local one already sits next to its FASTA
                    out.append(Companion(slot.number, suffix, Input(comp_loc, info, str(comp_loc))))
        return out

    def _find_companion(self, main: Input) -> tuple[str, Input] | None:
        candidates: list[tuple[str, Location]] = []
        for suffix, replace in companion_suffixes(Kind.ALIGNMENTS, main.location):
            loc = main.location.with_suffix(suffix) if replace else main.location.add_suffix(suffix)
            if loc != main.location and loc not in (c for _, c in candidates):
                candidates.append((suffix, loc))
        if not candidates:
            return None
        listed = self._companions_listed(main, [loc for _, loc in candidates])
        for suffix, loc in candidates:
            if listed is not None and loc not in listed:
                continue
            info = self._head_candidate(loc)
            if info is not None:
                return suffix, Input(loc, info, str(loc))
        return None

    # More keys than this under the stem (x.bam beside x1.bam ... x9999.bam): HEADs are cheaper.
    MAX_LISTED = 1000

    def _companions_listed(self, main: Input, candidates: list[Location]) -> set[Location] | None:
        """The candidates that exist, from one LIST of their common stem (`dir/x` for x.bam.bai, x.bai,
        ...); None when listing cannot tell. A LIST, not HEADs first: a job role may list only under
        a prefix (an `s3:prefix` condition), and to such a caller S3 answers the HEAD of a missing key
        with 403, not 404, so a BAM indexed as x.bai would fail on the HEAD of x.bam.bai (issue #12)."""
        store = self.stores.for_location(main.location)
        stem = min(candidates, key=lambda loc: len(str(loc)))
        prefix = stem.with_suffix("")
        wanted = set(candidates)
        found: set[Location] = set()
        try:
            for n, info in enumerate(store.list(prefix), start=1):
                if info.location in wanted:
                    found.add(info.location)
                if n >= self.MAX_LISTED or found == wanted:
                    return found if found == wanted else None
        except AccessDenied as exc:
            self.log.info("companion_list_denied", prefix=str(prefix), error=str(exc))
            return None
        return found

    def _head_candidate(self, loc: Location) -> ObjectInfo | None:
        """HEAD a companion that may not exist. A 403 means "not there" for a role without list rights
        (see `_companions_listed`); never for the main input, whose 403 is a real permission error."""
        try:
            return self.stores.for_location(loc).head(loc)
        except AccessDenied as exc:
            self.log.info("companion_head_denied", location=str(loc), error=str(exc))
            return None

    def _local_index_exists(self, main: Input) -> bool:
        if main.needs_fetch:
            return False
        store = self.stores.for_location(main.location)
        for suffix, replace in companion_suffixes(Kind.ALIGNMENTS, main.location):
            loc = main.location.with_suffix(suffix) if replace else main.location.add_suffix(suffix)
            path = store.local_path(loc)
            if path is not None and os.path.exists(path):
                return True
        return False

    def place_companions(
        self,
        scratch: Scratch,
        inputs: dict[int, Input],
        companions: list[Companion],
        download: Callable[[Input, Path], None],
    ) -> None:
        """Put each companion at `<input's local path><suffix>`, where HTSlib looks for it."""
        for comp in companions:
            base = inputs[comp.attach_to]
            if base.local_path is None:
                continue
            if base.host_path is not None:
                # A local file whose companion lives elsewhere: link the file into scratch so the
                # companion can sit next to it without touching the user's directory.
                link = scratch.input_dir(comp.attach_to) / safe_name(base.location.name)
                if not link.exists():
                    link.symlink_to(os.path.abspath(base.host_path))
                base.local_path = str(link)
            target = Path(base.local_path + comp.suffix)
            if comp.input.host_path is None:
                download(comp.input, target)
            else:
                target.unlink(missing_ok=True)
                target.symlink_to(os.path.abspath(comp.input.host_path))
