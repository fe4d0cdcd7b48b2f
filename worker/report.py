"""Make an alignstats report name what the user gave, not the scratch path or `-` the tool read.

alignstats prints `"InputFileName": "<path>"` and `"InputFileSize": <stat size>` as the first two keys
(ALIGNSTATS.md §3). Only those two lines are edited, as text, so every other byte of the report -
formatting, float digits, key order - stays exactly as the tool wrote it.
"""

from __future__ import annotations

import json
import re

from core.errors import InternalError

_NAME_RE = re.compile(rb'^(?P<indent>[ \t]*)"InputFileName": .*?(?P<comma>,?)[ \t]*$', re.MULTILINE)
_SIZE_RE = re.compile(rb'^(?P<indent>[ \t]*)"InputFileSize": \d+(?P<comma>,?)[ \t]*$', re.MULTILINE)


def rewrite_input_fields(report: bytes, *, name: str, size: int) -> bytes:
    """Set InputFileName/InputFileSize, leaving the rest byte for byte.

    The name is written as a JSON string (escaped when needed, unicode kept as is): alignstats itself
    does not escape it (Q17), but a URI with a quote must not make the report invalid JSON.
    """
    encoded = json.dumps(name, ensure_ascii=False).encode("utf-8")

    def name_line(m: re.Match[bytes]) -> bytes:
        return m.group("indent") + b'"InputFileName": ' + encoded + m.group("comma")

    def size_line(m: re.Match[bytes]) -> bytes:
        return m.group("indent") + b'"InputFileSize": ' + str(int(size)).encode() + m.group("comma")

    out, n_name = _NAME_RE.subn(name_line, report, count=1)
    out, n_size = _SIZE_RE.subn(size_line, out, count=1)
    if n_name != 1 or n_size != 1:
        raise InternalError("the tool's report has no InputFileName/InputFileSize lines to rewrite")
    return out
