"""The scratch directory of one job attempt, and the free-space check before anything is staged.

Layout (removed when the worker exits, whatever the outcome):

    $ALIGNBATCH_SCRATCH/alignbatch/<AWS_BATCH_JOB_ID>/<AWS_BATCH_JOB_ATTEMPT>/   (or local-<pid>-<rand>/)
        in/<n>/<name>        staged inputs, with companions next to them (<name>.bai, <name>.fai ...)
        in/<n>/.<name>.part  a download in progress (renamed only after verification)
        probe/<n>.head       the first bytes of a streamed input, for the header check
        out/<n>/<name>       outputs the tool writes, uploaded or moved into place after exit 0

Scoping by attempt means a retried attempt on the same host never sees a previous attempt's files.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import ScratchFull, UsageError

_UNSAFE = re.compile(r"[\x00-\x1f/\\]")
_MAX_NAME_BYTES = 200


@dataclass(frozen=True)
class Scratch:
    root: Path

    def input_dir(self, n: int) -> Path:
        return self._mk(self.root / "in" / str(n))

    def output_dir(self, n: int) -> Path:
        return self._mk(self.root / "out" / str(n))

    def probe_path(self, n: int) -> Path:
        return self._mk(self.root / "probe") / f"{n}.head"

    @staticmethod
    def _mk(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def scratch_base(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get("ALIGNBATCH_SCRATCH") or tempfile.gettempdir())


def create_scratch(base: Path, job_id: str | None, attempt: str | None) -> Scratch:
    """Make the attempt's private scratch directory (mode 0700), clearing leftovers of a crashed run."""
    if job_id:
        parts = [safe_name(job_id), safe_name(attempt or "1")]
    else:
        parts = [f"local-{os.getpid()}-{secrets.token_hex(4)}"]
    root = base.joinpath("alignbatch", *parts)
    try:
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True, mode=0o700)
    except OSError as exc:
        raise UsageError(f"cannot create scratch directory {root}: {exc.strerror or exc}") from None
    return Scratch(root)


def safe_name(name: str) -> str:
    """A local file name for an object name: separators and control characters replaced, length capped.

    The extension is kept because alignstats and HTSlib pick the format (and index names) from it.
    """
    cleaned = _UNSAFE.sub("_", name).strip() or "input"
    if cleaned in (".", ".."):
        cleaned = cleaned.replace(".", "_")
    if len(cleaned.encode("utf-8")) > _MAX_NAME_BYTES:
        suffixes = "".join(Path(cleaned).suffixes[-2:])[-40:]
        cleaned = hashlib.sha256(name.encode("utf-8")).hexdigest()[:24] + suffixes
    return cleaned


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def reserve_bytes() -> int:
    """Space to leave free for the tool's own output and temp files (ALIGNBATCH_SCRATCH_RESERVE_MIB)."""
    try:
        return int(os.environ.get("ALIGNBATCH_SCRATCH_RESERVE_MIB", "64")) * 1024 * 1024
    except ValueError:
        return 64 * 1024 * 1024


def ensure_space(scratch: Scratch, needed: int, what: str) -> None:
    """Refuse before downloading when the staged inputs cannot fit (ContentLength vs free space)."""
    if needed <= 0:
        return
    free = free_bytes(scratch.root)
    reserve = reserve_bytes()
    if needed + reserve > free:
        raise ScratchFull(
            f"scratch {scratch.root} has {free / 1e9:.2f} GB free but staging {what} needs "
            f"{needed / 1e9:.2f} GB (+{reserve / 1e6:.0f} MB reserve); use a larger volume, "
            "--scratch DIR, or stream the input"
        )
