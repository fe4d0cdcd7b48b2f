"""The worker end to end against the moto server: staging, streaming, checks, outputs, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pysam
import pytest

from tests.support.worker_helpers import run_worker

KEY = "dir/sample one ü.bam"  # spaces and unicode in keys must just work
URI = f"s3://inbox/{KEY}"


@pytest.fixture()
def s3(aws: str, data_dir: Path):  # type: ignore[no-untyped-def]
    client = boto3.client("s3")
    for bucket in ("inbox", "results", "refs"):
        client.create_bucket(Bucket=bucket)
    client.upload_file(str(data_dir / "i_edge.bam"), "inbox", KEY)
    client.upload_file(str(data_dir / "i_edge.bam.bai"), "inbox", KEY + ".bai")
    return client


def _golden_body(data_dir: Path, name: str) -> list[bytes]:
    return (data_dir / "golden" / name).read_bytes().split(b"\n")[3:]


def _assert_report(data: bytes, data_dir: Path, golden: str, name: str, size: int) -> None:
    lines = data.split(b"\n")
    assert lines[3:] == _golden_body(data_dir, golden)  # byte for byte outside the two rewritten lines
    report = json.loads(data)
    assert report["InputFileName"] == name
    assert report["InputFileSize"] == size


def _scratch_empty(scratch: Path) -> bool:
    root = scratch / "alignbatch"
    return not root.exists() or not any(p.is_file() for p in root.rglob("*"))


@pytest.mark.parametrize("mode", ["--stage", "--stream"])
def test_s3_round_trip_verified(s3, scratch: Path, data_dir: Path, mode: str) -> None:  # type: ignore[no-untyped-def]
    out_key = "reports/sample one ü.alignstats.json"
    res = run_worker(
        [mode, "--", "alignstats", "-C", "-i", URI, "-o", f"s3://results/{out_key}"],
        scratch,
        AWS_BATCH_JOB_ID="job-123",
        AWS_BATCH_JOB_ATTEMPT="1",
    )
    assert res.code == 0, res.stderr
    size = (data_dir / "i_edge.bam").stat().st_size
    obj = s3.get_object(Bucket="results", Key=out_key, ChecksumMode="ENABLED")
    _assert_report(obj["Body"].read(), data_dir, "i_edge_bam__C.json", URI, size)
    assert obj["ServerSideEncryption"] == "AES256"
    assert obj.get("ChecksumCRC64NVME")  # what later downloads verify end to end
    meta = obj["Metadata"]
    assert meta["alignbatch-inputs"].startswith("s3://inbox/dir/sample%20one%20%C3%BC.bam#")
    assert meta["alignbatch-job-id"] == "job-123" and meta["alignbatch-engine"] == "alignbatch-alignstats"
    transfers = res.events("transfer")
    down = [t for t in transfers if t["direction"] in ("download", "stream") and t["source"] == URI]
    assert len(down) == 1 and down[0]["verified"] == "checksum-crc32" and down[0]["bytes"] == size
    assert down[0]["direction"] == ("stream" if mode == "--stream" else "download")
    assert any(t["direction"] == "upload" and t["verified"] == "checksum-crc64nvme" for t in transfers)
    summary = res.last
    assert summary["event"] == "worker_summary" and summary["mode"] == mode[2:]
    assert all(e["job_id"] == "job-123" and e["attempt"] == "1" for e in res.logs)
    tool_run = res.events("tool_run")[0]
    assert tool_run["engine_version"]
    # the job's CPU: the tool's (a separate process, reaped) within the whole job's
    assert 0 < tool_run["tool_cpu_seconds"] <= summary["cpu_seconds"]
    assert _scratch_empty(scratch)


def test_auto_mode_streams_and_etag_md5_verification(s3, scratch: Path, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from botocore.config import Config

    plain = boto3.client("s3", config=Config(request_checksum_calculation="when_required"))
    plain.put_object(Bucket="inbox", Key="nock.bam", Body=(data_dir / "i_edge.bam").read_bytes())
    res = run_worker(
        ["--", "alignstats", "-C", "-i", "s3://inbox/nock.bam", "-o", "s3://results/n.json"], scratch
    )
    assert res.code == 0, res.stderr
    assert res.last["mode"] == "stream"
    assert res.events("transfer")[0]["verified"] == "etag-md5"


def test_local_paths_only(scratch: Path, data_dir: Path, tmp_path: Path) -> None:
    bam = tmp_path / "in dir" / "x.bam"
    bam.parent.mkdir()
    shutil.copy(data_dir / "i_edge.bam", bam)
    out = tmp_path / "out" / "x.json"
    res = run_worker(["--", "alignstats", "-C", "-i", f"file://{bam}", "-o", str(out)], scratch)
    assert res.code == 0, res.stderr
    _assert_report(out.read_bytes(), data_dir, "i_edge_bam__C.json", f"file://{bam}", bam.stat().st_size)
    assert [p.name for p in out.parent.iterdir()] == ["x.json"]  # no temp files left next to it
    assert res.last["mode"] == "local" and _scratch_empty(scratch)
    # a local BAM whose index lives elsewhere (--index): linked side by side in scratch for -r
    regions = tmp_path / "regions.bed"
    regions.write_text("ctgA\t0\t800\n")
    idx = tmp_path / "elsewhere" / "my.bai"
    idx.parent.mkdir()
    shutil.copy(data_dir / "i_edge.bam.bai", idx)
    out2 = tmp_path / "out" / "r.json"
    res = run_worker(
        ["--index", str(idx), "--", "alignstats", "-C", "-r", str(regions), "-i", str(bam), "-o", str(out2)],
        scratch,
    )
    assert res.code == 0, res.stderr
    assert json.loads(out2.read_bytes())["InputFileName"] == str(bam)
    assert not (bam.parent / "x.bam.bai").exists()  # nothing written next to the user's file


def test_mixed_local_and_s3(s3, scratch: Path, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s3.upload_file(str(data_dir / "targets.bed"), "refs", "targets.bed")
    # S3 input + S3 BED, local output
    out = tmp_path / "r.json"
    s3.upload_file(str(data_dir / "h_source.bam"), "inbox", "h_source.bam")
    res = run_worker(
        ["--", "alignstats", "-i", "s3://inbox/h_source.bam", "-t", "s3://refs/targets.bed", "-o", str(out)],
        scratch,
        ALIGNBATCH_TRANSFER_CHUNK_MIB="1",  # several ranged GETs reassembled in order into the pipe
    )
    assert res.code == 0, res.stderr
    assert res.last["mode"] == "stream"
    report = json.loads(out.read_bytes())
    assert report["InputFileName"] == "s3://inbox/h_source.bam" and "CapTotalTargets" in report
    assert report["TotalRecords"] == 27882
    # local input, S3 output
    res = run_worker(
        ["--", "alignstats", "-C", "-i", str(data_dir / "i_edge.bam"), "-o", "s3://results/local.json"],
        scratch,
    )
    assert res.code == 0, res.stderr
    body = s3.get_object(Bucket="results", Key="local.json")["Body"].read()
    _assert_report(body, data_dir, "i_edge_bam__C.json", str(data_dir / "i_edge.bam"), 2264)


def test_report_on_stdout_is_rewritten(s3, scratch: Path, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    res = run_worker(["--", "alignstats", "-C", "-i", URI], scratch)
    assert res.code == 0, res.stderr
    _assert_report(res.stdout, data_dir, "i_edge_bam__C.json", URI, 2264)


def test_companion_index_found_and_given(s3, scratch: Path, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket="refs", Key="regions.bed", Body=b"ctgA\t0\t800\nctgB\t10\t300\n")
    args = ["alignstats", "-C", "-r", "s3://refs/regions.bed", "-i", URI, "-o", "s3://results/r.json"]
    res = run_worker(["--", *args], scratch)
    assert res.code == 0, res.stderr
    assert res.last["mode"] == "stage"  # -r needs random access: never streamed
    assert any(t["source"] == URI + ".bai" for t in res.events("transfer"))
    # an index stored elsewhere under another name, given with --index
    s3.upload_file(str(data_dir / "i_edge.bam.bai"), "refs", "indexes/other.bai")
    s3.upload_file(str(data_dir / "i_edge.bam"), "inbox", "noindex.bam")
    args[5] = "s3://inbox/noindex.bam"
    res = run_worker(["--index", "s3://refs/indexes/other.bai", "--", *args], scratch)
    assert res.code == 0, res.stderr
    # no index at all: refused before the tool runs
    res = run_worker(["--", *args], scratch)
    assert res.code == 65 and "-r needs an index" in res.last["error"]
    # --stream with -r is a usage error
    res = run_worker(["--stream", "--", *args], scratch)
    assert res.code == 64


def test_missing_object_and_bucket(s3, scratch: Path) -> None:  # type: ignore[no-untyped-def]
    res = run_worker(
        ["--", "alignstats", "-C", "-i", "s3://inbox/nope.bam", "-o", "s3://results/x.json"], scratch
    )
    assert res.code == 66
    assert "s3://inbox/nope.bam does not exist" in res.last["error"]
    res = run_worker(
        ["--", "alignstats", "-C", "-i", "s3://no-bucket/x.bam", "-o", "s3://results/x.json"], scratch
    )
    assert res.code == 66 and "s3://no-bucket/x.bam" in res.last["error"]
    res = run_worker(["--", "alignstats", "-C", "-i", "/nonexistent/x.bam"], scratch)
    assert res.code == 66 and "/nonexistent/x.bam" in res.last["error"]


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("h_no_eof.bam", "BAM is truncated"),
        ("h_truncated.bam", "BAM is truncated"),
        ("h_not_bam.bam", "not a BAM, CRAM or SAM"),
        ("g_nosq.bam", "header has no @SQ"),
    ],
)
def test_damaged_inputs_refused(s3, scratch: Path, data_dir: Path, name: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    s3.upload_file(str(data_dir / name), "inbox", name)
    res = run_worker(
        ["--", "alignstats", "-C", "-i", f"s3://inbox/{name}", "-o", "s3://results/x.json"], scratch
    )
    assert res.code == 65, res.stderr
    assert res.last["error"].startswith(f"s3://inbox/{name}: {fragment}")
    assert not res.events("tool_start")  # refused before the tool ran
    assert "Contents" not in s3.list_objects_v2(Bucket="results")


def test_bed_and_option_checks(s3, scratch: Path, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s3.upload_file(str(data_dir / "h_source.bam"), "inbox", "h.bam")
    s3.upload_file(str(data_dir / "targets_end0.bed"), "refs", "end0.bed")
    res = run_worker(["--", "alignstats", "-i", "s3://inbox/h.bam", "-t", "s3://refs/end0.bed"], scratch)
    assert res.code == 65 and res.last["error"].startswith("s3://refs/end0.bed: line 1")
    ws = tmp_path / "ws.bed"
    ws.write_text(" chr1\t100\t200\n")
    res = run_worker(["--", "alignstats", "-i", "s3://inbox/h.bam", "-t", str(ws)], scratch)
    assert res.code == 65 and "starts with whitespace" in res.last["error"]
    res = run_worker(["--", "alignstats", "-C", "-i", "s3://inbox/h.bam", "-t", str(ws)], scratch)
    assert res.code == 64 and "-C" in res.last["error"]
    res = run_worker(["--", "alignstats", "-C", "-i", "s3://inbox/h.bam", "s3://refs/stray.bed"], scratch)
    assert res.code == 64 and "no input/output role" in res.last["error"]
    res = run_worker(["--bogus", "--", "alignstats"], scratch)
    assert res.code == 64


@pytest.fixture(scope="module")
def small_cram(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cram") / "h.cram"
    ref = str(data_dir / "ref.fa")
    with (
        pysam.AlignmentFile(str(data_dir / "h_source.bam")) as src,
        pysam.AlignmentFile(str(out), "wc", template=src, reference_filename=ref) as dst,
    ):
        for rec in src:
            dst.write(rec)
    return out


def test_cram_needs_reference_and_streams_with_it(
    s3, scratch: Path, data_dir: Path, small_cram: Path
) -> None:  # type: ignore[no-untyped-def]
    s3.upload_file(str(small_cram), "inbox", "h.cram")
    s3.upload_file(str(data_dir / "ref.fa"), "refs", "ref.fa")
    res = run_worker(
        ["--", "alignstats", "-C", "-i", "s3://inbox/h.cram", "-o", "s3://results/c.json"], scratch
    )
    assert res.code == 65 and "CRAM input needs a reference" in res.last["error"]
    # the reference without its .fai is refused too
    args = [
        "alignstats",
        "-C",
        "-i",
        "s3://inbox/h.cram",
        "-T",
        "s3://refs/ref.fa",
        "-o",
        "s3://results/c.json",
    ]
    res = run_worker(["--", *args], scratch)
    assert res.code == 65 and "ref.fa.fai is missing" in res.last["error"]
    s3.upload_file(str(data_dir / "ref.fa.fai"), "refs", "ref.fa.fai")
    res = run_worker(["--", *args], scratch)
    assert res.code == 0, res.stderr
    assert res.last["mode"] == "stream"
    report = json.loads(s3.get_object(Bucket="results", Key="c.json")["Body"].read())
    assert report["InputFileName"] == "s3://inbox/h.cram" and report["TotalRecords"] == 27882


def test_tool_failure_passes_through_and_uploads_nothing(s3, scratch: Path, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    # -M and -O together: alignstats' own usage error, exit 1, passed through unchanged
    res = run_worker(["--", "alignstats", "-C", "-M", "-O", "-i", URI, "-o", "s3://results/x.json"], scratch)
    assert res.code == 1
    assert res.last["tool_exit_code"] == 1 and res.last["outcome"] == "tool_failed"
    assert "Contents" not in s3.list_objects_v2(Bucket="results")


def test_index_tool_under_the_worker(s3, scratch: Path, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    s3.upload_file(str(data_dir / "h_source.bam"), "inbox", "h one.bam")
    out = "indexes/h one.bam.bai"
    res = run_worker(
        ["--", "alignbatch-index", "-i", "s3://inbox/h one.bam", "-o", f"s3://results/{out}"], scratch
    )
    assert res.code == 0, res.stderr
    body = s3.get_object(Bucket="results", Key=out)["Body"].read()
    assert body == (data_dir / "h_source.bam.bai").read_bytes()
    s3.upload_file(str(data_dir / "h_no_eof.bam"), "inbox", "bad.bam")
    res = run_worker(
        ["--", "alignbatch-index", "-i", "s3://inbox/bad.bam", "-o", "s3://results/bad.bai"], scratch
    )
    assert res.code == 65 and "truncated" in res.last["error"]


def test_scratch_full_is_refused_before_downloading(s3, scratch: Path) -> None:  # type: ignore[no-untyped-def]
    res = run_worker(
        ["--stage", "--", "alignstats", "-C", "-i", URI, "-o", "s3://results/x.json"],
        scratch,
        ALIGNBATCH_SCRATCH_RESERVE_MIB=str(1 << 40),  # pretend the volume is far too small
    )
    assert res.code == 73 and res.last["retryable"] is True
    assert "free but staging" in res.last["error"]
    assert not res.events("transfer") and _scratch_empty(scratch)


def test_multipart_etag_without_parts_by_number_is_size_checked(s3, scratch: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """moto ignores ?partNumber= (S3 and seaweedfs serve the part): the worker notices the whole object
    coming back, fetches ranges instead and verifies the size only. The part-by-part MD5 check itself
    runs in test_worker_faults against a proxy that serves parts as S3 does."""
    from tests.support.worker_helpers import upload_multipart_without_checksum

    data = bytes(range(256)) * (12 * 1024 * 1024 // 256 + 7)
    upload_multipart_without_checksum("inbox", "mp.bin", data)
    out = tmp_path / "copy.bin"
    res = run_worker(
        ["--input", "s3://inbox/mp.bin", "--output", str(out), "--", "cp", "s3://inbox/mp.bin", str(out)],
        scratch,
    )
    assert res.code == 0, res.stderr
    down = [t for t in res.events("transfer") if t["direction"] == "download"]
    assert down[0]["verified"] == "size-only" and down[0]["bytes"] == len(data)
    assert out.read_bytes() == data


def test_a_local_output_that_is_a_device_is_written_into_not_replaced(
    scratch: Path, data_dir: Path, tmp_path: Path
) -> None:
    # `-o /dev/null` through a symlink (safe to run as root): the old rename-into-place replaced the
    # link, and given /dev/null itself, the device node.
    link = tmp_path / "null"
    link.symlink_to("/dev/null")
    res = run_worker(["--", "alignstats", "-C", "-i", str(data_dir / "i_edge.bam"), "-o", str(link)], scratch)
    assert res.code == 0, res.stderr
    assert link.is_symlink() and Path("/dev/null").is_char_device()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".null.")]  # no temp file left


def test_an_unusable_aws_config_is_a_config_error_not_an_internal_one(  # type: ignore[no-untyped-def]
    s3, scratch: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "aws config"
    bad.write_text("this is not an ini file\n")
    args = ["--", "alignstats", "-C", "-i", "s3://inbox/x.bam", "-o", "s3://results/x.json"]
    res = run_worker(args, scratch, AWS_CONFIG_FILE=str(bad))
    assert res.code == 78, res.stderr
    assert "AWS configuration" in res.last["error"] and str(bad) in res.last["error"]
    res = run_worker(args, scratch, AWS_PROFILE="no-such-profile")
    assert res.code == 78 and "no-such-profile" in res.last["error"], res.stderr
