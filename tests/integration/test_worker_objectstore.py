"""S3ObjectStore over HTTP against the moto server."""

from __future__ import annotations

import boto3
import pytest

from core.errors import ObjectMissing
from core.locations import Location, parse_location
from core.objectstore import S3ObjectStore


@pytest.fixture()
def bucket(aws: str) -> str:
    boto3.client("s3").create_bucket(Bucket="os-bucket")
    return "os-bucket"


@pytest.mark.parametrize("key", ["plain.json", "with space/ünïcode ✓.json", "a/../b.json"])
def test_write_head_read_list_delete(bucket: str, key: str) -> None:
    store = S3ObjectStore(sse_kms_key_id="alias/test")
    loc = Location.s3(bucket, key)
    info = store.write_bytes(loc, b'{"a": 1}\n', content_type="application/json", metadata={"run": "r1"})
    assert info.size == 9 and info.checksum and info.checksum.startswith("sha256:")
    head = store.head(loc)
    assert head is not None
    assert head.size == 9 and head.etag == info.etag and head.metadata == {"run": "r1"}
    assert head.checksum == info.checksum
    raw = boto3.client("s3").head_object(Bucket=bucket, Key=key)
    assert raw["ServerSideEncryption"] == "aws:kms"
    assert store.read_bytes(loc) == b'{"a": 1}\n'
    assert [i.location for i in store.list(parse_location(f"s3://{bucket}", allow_prefix=True))] == [loc]
    store.delete(loc)
    assert store.head(loc) is None


def test_missing_object_and_bucket(bucket: str) -> None:
    store = S3ObjectStore()
    assert store.head(Location.s3(bucket, "nope")) is None
    with pytest.raises(ObjectMissing, match="s3://os-bucket/nope"):
        store.read_bytes(Location.s3(bucket, "nope"))
    with pytest.raises(ObjectMissing, match="bucket does not exist"):
        store.read_bytes(Location.s3("no-such-bucket", "k"))


def test_default_sse_is_aes256(bucket: str) -> None:
    S3ObjectStore().write_bytes(Location.s3(bucket, "k"), b"x")
    assert boto3.client("s3").head_object(Bucket=bucket, Key="k")["ServerSideEncryption"] == "AES256"
