"""Report rewrite: only InputFileName/InputFileSize change, byte for byte elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import InternalError
from worker.report import rewrite_input_fields


def test_rewrite_keeps_every_other_byte(data_dir: Path) -> None:
    original = (data_dir / "golden" / "i_edge__C.json").read_bytes()
    out = rewrite_input_fields(original, name="s3://inbox/dir/i edge ü.bam", size=2264)
    old_lines, new_lines = original.split(b"\n"), out.split(b"\n")
    assert old_lines[3:] == new_lines[3:]
    assert new_lines[1] == '    "InputFileName": "s3://inbox/dir/i edge ü.bam",'.encode()
    assert new_lines[2] == b'    "InputFileSize": 2264,'
    assert json.loads(out)["InputFileName"] == "s3://inbox/dir/i edge ü.bam"


def test_rewrite_escapes_quotes(data_dir: Path) -> None:
    original = (data_dir / "golden" / "i_edge__C.json").read_bytes()
    out = rewrite_input_fields(original, name='s3://b/a"b\\c.bam', size=1)
    assert json.loads(out)["InputFileName"] == 's3://b/a"b\\c.bam'


def test_rewrite_refuses_foreign_text() -> None:
    with pytest.raises(InternalError):
        rewrite_input_fields(b"{}\n", name="x", size=1)
