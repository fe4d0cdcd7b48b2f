"""A CRAM's reference is never fetched over the network (issue #14).

HTSlib looks a reference sequence missing from -T up by MD5 in REF_PATH, and with REF_PATH unset in
EBI's server; in a VPC without internet that connection hangs until Batch kills the job. Here a
listener that accepts connections and never answers stands in for an unreachable server: the worker
must fail at once with a one-line error, and nothing may connect to it.
"""

from __future__ import annotations

import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pysam
import pytest

from tests.support.worker_helpers import run_worker


@pytest.fixture(scope="module")
def orphan_cram(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CRAM written against a copy of ref.fa that is gone afterwards, so its @SQ UR points
    nowhere and only the M5 tags could find the reference."""
    work = tmp_path_factory.mktemp("orphan")
    ref = work / "gone" / "ref.fa"
    ref.parent.mkdir()
    shutil.copy(data_dir / "ref.fa", ref)
    out = work / "h.cram"
    with (
        pysam.AlignmentFile(str(data_dir / "h_source.bam")) as src,
        pysam.AlignmentFile(str(out), "wc", template=src, reference_filename=str(ref)) as dst,
    ):
        for n, rec in enumerate(src):
            if n >= 300:
                break
            dst.write(rec)
    shutil.rmtree(ref.parent)
    return out


@pytest.fixture(scope="module")
def wrong_reference(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ref.fa with every contig renamed: none of the CRAM's sequences is in it."""
    out = tmp_path_factory.mktemp("wrongref") / "other.fa"
    out.write_text((data_dir / "ref.fa").read_text().replace(">chr", ">other"))
    pysam.faidx(str(out))
    return out


@pytest.fixture()
def silent_server() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP port that accepts connections and never answers (what a blocked egress looks like);
    yields the port and the first bytes of every connection made to it."""
    seen: list[bytes] = []
    held: list[socket.socket] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.settimeout(2)
            try:
                seen.append(conn.recv(200))
            except OSError:
                seen.append(b"")
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], seen
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


@pytest.fixture()
def s3(aws: str, orphan_cram: Path, wrong_reference: Path):  # type: ignore[no-untyped-def]
    client = boto3.client("s3")
    for bucket in ("inbox", "refs", "results"):
        client.create_bucket(Bucket=bucket)
    client.upload_file(str(orphan_cram), "inbox", "h.cram")
    client.upload_file(str(wrong_reference), "refs", "other.fa")
    client.upload_file(str(wrong_reference) + ".fai", "refs", "other.fa.fai")
    return client


@pytest.mark.parametrize("mode", ["--stage", "--stream"])
def test_a_cram_whose_reference_is_not_given_fails_fast_without_the_network(  # type: ignore[no-untyped-def]
    s3, scratch: Path, silent_server: tuple[int, list[bytes]], mode: str
) -> None:
    port, seen = silent_server
    args = [
        "alignstats",
        "-C",
        "-i",
        "s3://inbox/h.cram",
        "-T",
        "s3://refs/other.fa",
        "-o",
        "s3://results/h.json",
    ]
    started = time.monotonic()
    # A user REF_PATH naming a server: the entry is dropped (logged), never connected to.
    res = run_worker([mode, "--", *args], scratch, timeout=45, REF_PATH=f"http://127.0.0.1:{port}/%s")
    assert time.monotonic() - started < 30
    assert res.code == 65, res.stderr
    assert res.last["error"] == (
        "s3://inbox/h.cram: the CRAM's reference sequence 'chr1' is not in -T s3://refs/other.fa "
        "(references are never fetched over the network); pass the FASTA the CRAM was written with"
    )
    assert not res.last["retryable"]
    assert seen == []
    [stripped] = res.events("ref_path_network_stripped")
    assert stripped["removed"] == [f"http://127.0.0.1:{port}/%s"]
    assert "Contents" not in s3.list_objects_v2(Bucket="results")


def test_the_tool_gets_local_ref_path_and_ref_cache(tmp_path: Path, scratch: Path) -> None:
    show = (
        "import os, sys; "
        "print('REF', os.environ.get('REF_PATH'), os.environ.get('REF_CACHE'), file=sys.stderr)"
    )
    res = run_worker(["--", sys.executable, "-c", show], scratch)
    assert res.code == 0, res.stderr
    [line] = [e["line"] for e in res.events("tool_stderr") if e["line"].startswith("REF ")]
    _, ref_path, ref_cache = line.split(" ")
    # unset: an empty directory and a cache in the attempt's scratch, never HTSlib's EBI default
    root = str(scratch / "alignbatch")
    assert ref_path.startswith(root) and ref_path.endswith("/ref-path")
    assert ref_cache.startswith(root) and ref_cache.endswith("/ref-cache/%2s/%2s/%s")
    # the user's local entries and cache are kept; the network entry goes
    res = run_worker(
        ["--", sys.executable, "-c", show],
        scratch,
        REF_PATH="/refs/%2s/%s:https://www.ebi.ac.uk/ena/cram/md5/%s",
        REF_CACHE=str(tmp_path / "cache/%s"),
    )
    assert res.code == 0, res.stderr
    [line] = [e["line"] for e in res.events("tool_stderr") if e["line"].startswith("REF ")]
    assert line == f"REF /refs/%2s/%s {tmp_path}/cache/%s"
    assert res.events("ref_path_network_stripped")[0]["removed"] == ["https://www.ebi.ac.uk/ena/cram/md5/%s"]
