"""The worker under a least-privilege job role (issue #12 finding 1): GetObject, and ListBucket only
with an `s3:prefix` condition. Real S3 answers such a caller's HEAD of a missing key with 403, so a
companion lookup by HEADs alone failed (77) on a BAM whose index is `x.bai` instead of `x.bam.bai`.

Moto evaluates no S3 policies; `least_privilege_s3` in front of it answers as S3 would.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from tests.support.faults import least_privilege_s3
from tests.support.worker_helpers import moto_behind, run_worker

BAM = "s3://inbox/runs/sample.bam"


@pytest.fixture()
def s3(aws: str, data_dir: Path):  # type: ignore[no-untyped-def]
    client = boto3.client("s3")
    for bucket in ("inbox", "results"):
        client.create_bucket(Bucket=bucket)
    client.upload_file(str(data_dir / "i_edge.bam"), "inbox", "runs/sample.bam")
    client.upload_file(str(data_dir / "i_edge.bam.bai"), "inbox", "runs/sample.bai")  # not sample.bam.bai
    client.put_object(Bucket="inbox", Key="runs/regions.bed", Body=b"ctgA\t0\t800\nctgB\t10\t300\n")
    return client


# ListBucket under runs/ only (the controller's inbox prefix), or no ListBucket at all.
@pytest.mark.parametrize("list_prefixes", [("runs/",), ()], ids=["list-under-prefix", "no-list"])
def test_an_index_named_x_bai_is_found_without_list_rights_on_missing_keys(  # type: ignore[no-untyped-def]
    s3, scratch: Path, list_prefixes: tuple[str, ...]
) -> None:
    # -r needs random access, so the BAM is staged and its index looked up next to it.
    args = ["alignstats", "-C", "-r", "s3://inbox/runs/regions.bed", "-i", BAM, "-o", "s3://results/r.json"]
    with moto_behind(lambda app: least_privilege_s3(app, list_prefixes=list_prefixes)) as endpoint:
        res = run_worker(["--", *args], scratch, AWS_ENDPOINT_URL=endpoint)
        assert res.code == 0, res.stderr
        assert any(t["source"] == "s3://inbox/runs/sample.bai" for t in res.events("transfer"))
        assert s3.head_object(Bucket="results", Key="r.json")["ContentLength"] > 0
        # With list rights one LIST answers and no HEAD of a missing key is tried; without them the
        # HEADs run and their 403s count as "not there".
        denied = {e["event"] for e in res.logs} & {"companion_list_denied", "companion_head_denied"}
        assert denied == (set() if list_prefixes else {"companion_list_denied", "companion_head_denied"})
        # A 403 on the main input itself stays a permission error: it may really be one.
        args[5] = "s3://inbox/runs/nope.bam"
        res = run_worker(["--", *args], scratch, AWS_ENDPOINT_URL=endpoint)
        assert res.code == 77, res.stderr


def test_the_middleware_answers_as_s3_does(s3) -> None:  # type: ignore[no-untyped-def]
    from botocore.exceptions import ClientError

    with moto_behind(lambda app: least_privilege_s3(app, list_prefixes=("runs/",))) as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint)
        with pytest.raises(ClientError) as head:
            client.head_object(Bucket="inbox", Key="runs/sample.bam.bai")
        assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert client.head_object(Bucket="inbox", Key="runs/sample.bai")["ContentLength"] > 0
        listed = client.list_objects_v2(Bucket="inbox", Prefix="runs/sample")
        assert [o["Key"] for o in listed["Contents"]] == ["runs/sample.bai", "runs/sample.bam"]
        with pytest.raises(ClientError) as denied:
            client.list_objects_v2(Bucket="inbox", Prefix="other/")
        assert denied.value.response["Error"]["Code"] == "AccessDenied"
