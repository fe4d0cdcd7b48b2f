"""Inputs pinned to the content their event announced (issue #14): `s3://b/k?versionId=V` reads that
version whatever is current; `s3://b/k?etag=E` (unversioned buckets) reads the object only while its
ETag is still E. Real HTTP to moto, which keeps versions and honours VersionId and If-Match.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from tests.support.worker_helpers import run_worker

KEY = "runs/sample.bam"
URI = f"s3://inbox/{KEY}"


def _golden_body(data_dir: Path, name: str) -> list[bytes]:
    return (data_dir / "golden" / name).read_bytes().split(b"\n")[3:]


@pytest.fixture()
def s3(aws: str):  # type: ignore[no-untyped-def]
    client = boto3.client("s3")
    for bucket in ("inbox", "results"):
        client.create_bucket(Bucket=bucket)
    return client


@pytest.mark.parametrize("mode", ["--stage", "--stream"])
def test_a_version_pin_reads_that_version_after_an_overwrite(  # type: ignore[no-untyped-def]
    s3, scratch: Path, data_dir: Path, mode: str
) -> None:
    s3.put_bucket_versioning(Bucket="inbox", VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket="inbox", Key=KEY, Body=(data_dir / "i_edge.bam").read_bytes())["VersionId"]
    v2 = s3.put_object(Bucket="inbox", Key=KEY, Body=(data_dir / "h_source.bam").read_bytes())["VersionId"]
    assert v1 != v2
    res = run_worker(
        [mode, "--", "alignstats", "-C", "-i", f"{URI}?versionId={v1}", "-o", "s3://results/r.json"], scratch
    )
    assert res.code == 0, res.stderr
    data = s3.get_object(Bucket="results", Key="r.json")["Body"].read()
    assert data.split(b"\n")[3:] == _golden_body(data_dir, "i_edge_bam__C.json")  # v1's content
    report = json.loads(data)
    # The report names the object, not the version: a pinned run's report equals the unpinned one's.
    assert (report["InputFileName"], report["InputFileSize"]) == (URI, 2264)
    [main] = [t for t in res.events("transfer") if t["source"].startswith(URI)]
    assert main["version_id"] == v1 and main["bytes"] == 2264
    assert res.last["input_version_id"] == v1
    # without a pin the current version (v2) is read, as before
    res = run_worker([mode, "--", "alignstats", "-C", "-i", URI, "-o", "s3://results/r2.json"], scratch)
    assert res.code == 0, res.stderr
    report = json.loads(s3.get_object(Bucket="results", Key="r2.json")["Body"].read())
    assert report["InputFileSize"] == (data_dir / "h_source.bam").stat().st_size
    assert res.last["input_version_id"] == v2


def test_a_version_that_no_longer_exists_is_66(s3, scratch: Path, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    s3.put_bucket_versioning(Bucket="inbox", VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket="inbox", Key=KEY, Body=(data_dir / "i_edge.bam").read_bytes())["VersionId"]
    s3.put_object(Bucket="inbox", Key=KEY, Body=(data_dir / "h_source.bam").read_bytes())
    s3.delete_object(Bucket="inbox", Key=KEY, VersionId=v1)
    res = run_worker(
        ["--", "alignstats", "-C", "-i", f"{URI}?versionId={v1}", "-o", "s3://results/r.json"], scratch
    )
    assert res.code == 66, res.stderr
    assert f"version {v1} no longer exists" in res.last["error"] and not res.last["retryable"]
    assert "Contents" not in s3.list_objects_v2(Bucket="results")


@pytest.mark.parametrize("mode", ["--stage", "--stream"])
def test_an_etag_pin_fails_once_the_object_was_overwritten(  # type: ignore[no-untyped-def]
    s3, scratch: Path, data_dir: Path, mode: str
) -> None:
    e1 = s3.put_object(Bucket="inbox", Key=KEY, Body=(data_dir / "i_edge.bam").read_bytes())["ETag"].strip(
        '"'
    )
    args = ["alignstats", "-C", "-i", f"{URI}?etag={e1}", "-o", "s3://results/r.json"]
    res = run_worker([mode, "--", *args], scratch)
    assert res.code == 0, res.stderr
    assert json.loads(s3.get_object(Bucket="results", Key="r.json")["Body"].read())["InputFileName"] == URI
    s3.delete_object(Bucket="results", Key="r.json")
    e2 = s3.put_object(Bucket="inbox", Key=KEY, Body=(data_dir / "h_source.bam").read_bytes())["ETag"].strip(
        '"'
    )
    assert e1 != e2
    res = run_worker([mode, "--", *args], scratch)
    assert res.code == 66, res.stderr
    assert "object changed since the event" in res.last["error"] and not res.last["retryable"]
    assert "the newer version has its own event" in res.last["error"]
    assert "Contents" not in s3.list_objects_v2(Bucket="results")
