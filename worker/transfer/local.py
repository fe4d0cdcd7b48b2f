"""Publishing an output to a local path: an atomic rename into place (copy + rename across filesystems),
or a plain write into a device or FIFO such as /dev/null.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

from core.objectstore import replace_into
from worker.transfer.result import TransferResult


def _is_special(path: Path) -> bool:
    """An existing destination that is neither a regular file nor a directory (through symlinks)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def copy_local(src: Path, dest: Path) -> TransferResult:
    """Put a finished local output in place atomically (rename on the same filesystem, else copy+rename)."""
    started = time.monotonic()
    size = src.stat().st_size
    if _is_special(dest):
        # /dev/null, a FIFO, /dev/stdout: write into it. Renaming over it would replace the device node
        # itself (as root, `-o /dev/null` turned /dev/null into a regular file for every process).
        with open(src, "rb") as fin, open(dest, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1024 * 1024)
        return TransferResult("copy", str(src), str(dest), size, time.monotonic() - started, "local-write")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    try:
        try:
            os.replace(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        replace_into(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return TransferResult("copy", str(src), str(dest), size, time.monotonic() - started, "local-rename")
