"""The tool's CRAM reference environment and the HTSlib reference failures, without running a tool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.execute import join_ref_path, reference_environment, reference_problem, split_ref_path


class _Log:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.warnings.append((event, fields))


def test_ref_path_is_split_as_htslib_does() -> None:
    assert split_ref_path("/a:/b/%2s/%s") == ["/a", "/b/%2s/%s"]
    assert split_ref_path("http://h:8080/%s:/local") == ["http://h:8080/%s", "/local"]
    assert split_ref_path("/refs:https://www.ebi.ac.uk/ena/cram/md5/%s") == [
        "/refs",
        "https://www.ebi.ac.uk/ena/cram/md5/%s",
    ]
    assert split_ref_path("/a::b:URL=ftp://h/x") == ["/a:b", "URL=ftp://h/x"]
    assert join_ref_path(["/a:b", "/c"]) == "/a::b:/c"


def test_network_entries_are_stripped_and_an_empty_ref_path_is_never_left(tmp_path: Path) -> None:
    log = _Log()
    env = reference_environment({"REF_PATH": "/refs/%s:http://h:80/%s:s3:://b/md5/%s"}, tmp_path, log)
    assert env["REF_PATH"] == "/refs/%s"
    assert env["REF_CACHE"] == f"{tmp_path}/ref-cache/%2s/%2s/%s"
    assert log.warnings[0][1]["removed"] == ["http://h:80/%s", "s3://b/md5/%s"]
    # unset, empty, or only network entries: an empty directory, so HTSlib never falls back to EBI
    for given in ({}, {"REF_PATH": ""}, {"REF_PATH": "https://x/%s"}):
        env = reference_environment(given, tmp_path, _Log())
        assert env["REF_PATH"] == str(tmp_path / "ref-path") and (tmp_path / "ref-path").is_dir()
    # the user's own cache stays
    assert reference_environment({"REF_CACHE": "/c/%s"}, tmp_path, _Log())["REF_CACHE"] == "/c/%s"


def test_htslib_reference_failures_are_recognised() -> None:
    assert reference_problem('[W::cram_get_ref] Failed to populate reference "chr1"') == ("missing", "chr1")
    assert reference_problem("[E::cram_decode_slice] Unable to fetch reference #0 1..1843") == (
        "missing",
        "0",
    )
    assert reference_problem("[E::cram_decode_slice] Unable to fetch reference chr1:10-1843") == (
        "missing",
        "chr1",
    )
    mismatch = "[E::cram_decode_slice] MD5 checksum reference mismatch for ref 0 pos 1..1843"
    assert reference_problem(mismatch) == ("mismatch", "0 pos 1..1843")
    assert reference_problem("[E::cram_index_load] Could not retrieve index file for 'x.cram'") is None
