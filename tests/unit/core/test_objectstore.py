"""LocalObjectStore and the error translation, without servers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from core.errors import AccessDenied, ObjectMissing, TransientIOError
from core.exitcodes import ExitCode
from core.locations import Location, parse_location
from core.objectstore import (
    LocalObjectStore,
    S3ObjectStore,
    Stores,
    store_for,
)
from core.s3client import sse_arguments, translate_error
from tests.support.stores import FakeS3Client


def test_local_write_is_atomic_and_readable(tmp_path: Path) -> None:
    store = LocalObjectStore()
    loc = Location.file(str(tmp_path / "a" / "b" / "x.json"))
    info = store.write_bytes(loc, b"{}\n", content_type="application/json")
    assert info.size == 3 and info.checksum and info.checksum.startswith("sha256:")
    assert store.read_bytes(loc) == b"{}\n"
    head = store.head(loc)
    assert head is not None and head.size == 3 and head.etag.endswith("-3")
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["x.json"]  # no temp files left
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a" / "b" / "x.json").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_local_head_missing_and_delete(tmp_path: Path) -> None:
    store = LocalObjectStore()
    loc = Location.file(str(tmp_path / "nope"))
    assert store.head(loc) is None
    assert store.head(Location.file(str(tmp_path))) is None  # a directory is not an object
    store.delete(loc)  # idempotent
    with pytest.raises(ObjectMissing) as info:
        store.read_bytes(loc)
    assert info.value.exit_code == ExitCode.INPUT_MISSING
    assert str(tmp_path / "nope") in str(info.value)


def test_local_list_has_prefix_semantics(tmp_path: Path) -> None:
    store = LocalObjectStore()
    for rel in ("r/a.json", "r/ab.json", "r/sub/c.json", "other/d.json"):
        store.write_bytes(Location.file(str(tmp_path / rel)), b"1")
    names = lambda prefix: sorted(os.path.relpath(i.location.path, tmp_path) for i in store.list(prefix))  # noqa: E731
    assert names(Location.file(str(tmp_path / "r"))) == ["r/a.json", "r/ab.json", "r/sub/c.json"]
    assert names(Location.file(str(tmp_path / "r" / "a"))) == ["r/a.json", "r/ab.json"]
    assert names(Location.file(str(tmp_path / "missing"))) == []


def test_store_for_picks_implementation() -> None:
    assert isinstance(store_for(parse_location("/tmp/x")), LocalObjectStore)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    assert isinstance(store_for(parse_location("s3://bkt/x"), client=object()), S3ObjectStore)


DATA = bytes(range(256)) * 4  # 1 KiB, every offset distinguishable


def test_local_read_range_seeks_and_reads(tmp_path: Path) -> None:
    store = LocalObjectStore()
    loc = Location.file(str(tmp_path / "x.bam"))
    store.write_bytes(loc, DATA)
    assert store.read_range(loc, 0, 16) == DATA[:16]
    assert store.read_range(loc, 1000, 100) == DATA[1000:]  # short only at the end
    assert store.read_range(loc, -38, 38) == DATA[-38:]
    assert store.read_range(loc, -5000, 5000) == DATA  # a tail longer than the file: the whole file
    assert store.read_range(loc, 5, 0) == b""
    assert store.local_path(loc) == loc.path
    with pytest.raises(ObjectMissing):
        store.read_range(Location.file(str(tmp_path / "nope")), 0, 1)


def test_s3_read_range_is_one_ranged_get() -> None:
    client = FakeS3Client({("bkt", "x.bam"): DATA})
    store = S3ObjectStore(client)
    loc = Location.s3("bkt", "x.bam")
    assert store.read_range(loc, 0, 16) == DATA[:16]
    assert store.read_range(loc, 1000, 100) == DATA[1000:]
    # The EOF probe is a suffix range, so it needs no size and fault proxies can tell it apart.
    assert store.read_range(loc, -38, 38) == DATA[-38:]
    assert [r["Range"] for r in client.requests] == ["bytes=0-15", "bytes=1000-1099", "bytes=-38"]
    assert store.read_range(loc, 5, 0) == b"" and len(client.requests) == 3
    assert store.local_path(loc) is None


def test_s3_head_of_an_absent_object_is_none_but_a_missing_bucket_is_an_error() -> None:
    client = FakeS3Client({})
    store = S3ObjectStore(client)
    assert store.head(Location.s3("bkt", "nope")) is None

    def no_bucket(**kwargs: object) -> None:
        raise _client_error("NoSuchBucket", 404)

    client.head_object = no_bucket  # type: ignore[method-assign]
    with pytest.raises(ObjectMissing, match="bucket does not exist"):
        store.head(Location.s3("bkt", "nope"))


def test_stores_choose_once_per_kind_of_location() -> None:
    stores = Stores(client=FakeS3Client({}))
    local = stores.for_location(parse_location("/tmp/a"))
    assert isinstance(local, LocalObjectStore) and stores.for_location(parse_location("b")) is local
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    remote = stores.for_location(parse_location("s3://bkt/x"))
    assert isinstance(remote, S3ObjectStore) and stores.for_location(parse_location("s3://other/y")) is remote


def _client_error(code: str, status: int = 400) -> ClientError:
    response = {"Error": {"Code": code, "Message": "msg"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "Op")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "cls", "code"),
    [
        (_client_error("NoSuchKey", 404), ObjectMissing, ExitCode.INPUT_MISSING),
        (_client_error("NoSuchBucket", 404), ObjectMissing, ExitCode.INPUT_MISSING),
        (_client_error("AccessDenied", 403), AccessDenied, ExitCode.PERMISSION),
        (_client_error("SlowDown", 503), TransientIOError, ExitCode.TRANSIENT_IO),
        (_client_error("InternalError", 500), TransientIOError, ExitCode.TRANSIENT_IO),
        (NoCredentialsError(), AccessDenied, ExitCode.PERMISSION),
        (EndpointConnectionError(endpoint_url="http://x"), TransientIOError, ExitCode.TRANSIENT_IO),
        (FileNotFoundError(2, "x"), ObjectMissing, ExitCode.INPUT_MISSING),
        (PermissionError(13, "x"), AccessDenied, ExitCode.PERMISSION),
    ],
)
def test_translate_error(exc: BaseException, cls: type, code: ExitCode) -> None:
    err = translate_error(exc, parse_location("s3://bkt/a b.bam"), "download")
    assert isinstance(err, cls)
    assert err.exit_code == code
    assert "s3://bkt/a b.bam" in str(err) and "\n" not in str(err)


def test_sse_arguments() -> None:
    assert sse_arguments(None) == {"ServerSideEncryption": "AES256"}
    assert sse_arguments("alias/k") == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/k"}


def test_replace_into_never_changes_the_process_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Setting the umask, even to restore it at once, races every other thread creating files: the
    # umask must be read once at import, never per rename.
    from core import objectstore

    calls: list[int] = []
    real_umask = os.umask

    def counting_umask(mask: int) -> int:
        calls.append(mask)
        return real_umask(mask)

    monkeypatch.setattr(objectstore.os, "umask", counting_umask)
    for n in range(3):
        tmp = tmp_path / f".tmp{n}"
        tmp.write_bytes(b"x")
        tmp.chmod(0o600)
        objectstore.replace_into(tmp, tmp_path / f"out{n}")
    assert calls == []
    umask = real_umask(0)
    real_umask(umask)
    assert umask == objectstore._UMASK
    assert all((tmp_path / f"out{n}").stat().st_mode & 0o777 == 0o666 & ~umask for n in range(3))


def test_every_read_of_a_pinned_location_carries_its_pin() -> None:
    # Header/EOF probes and small reads must see the same content as the download: the pinned one.
    client = FakeS3Client({("bkt", "x.bam"): b"0123456789"})
    store = S3ObjectStore(client=client)
    heads: list[dict[str, object]] = []
    real_head = client.head_object

    def head_object(**kwargs: object) -> dict[str, object]:
        heads.append(kwargs)
        return real_head(**kwargs)

    client.head_object = head_object  # type: ignore[method-assign]
    for text, pin in (
        ("s3://bkt/x.bam?versionId=v1", {"VersionId": "v1"}),
        ("s3://bkt/x.bam?etag=abc", {"IfMatch": '"abc"'}),
        ("s3://bkt/x.bam", {}),
    ):
        loc = parse_location(text)
        client.requests.clear()
        heads.clear()
        assert store.head(loc) is not None
        assert store.read_range(loc, 0, 4) == b"0123" and store.read_range(loc, -2, 2) == b"89"
        assert store.read_bytes(loc) == b"0123456789"
        for request in [*heads, *client.requests]:
            assert {k: request[k] for k in ("VersionId", "IfMatch") if k in request} == pin


def test_a_pinned_location_that_is_gone_is_66_not_retryable() -> None:
    def error(code: str, status: int) -> ClientError:
        return ClientError(
            {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject"
        )  # type: ignore[arg-type]

    versioned = parse_location("s3://bkt/x.bam?versionId=v1")
    err = translate_error(error("NoSuchVersion", 404), versioned, "read")
    assert err.exit_code == ExitCode.INPUT_MISSING and "version v1 no longer exists" in str(err)
    tagged = parse_location("s3://bkt/x.bam?etag=abc")
    err = translate_error(error("PreconditionFailed", 412), tagged, "read")
    assert err.exit_code == ExitCode.INPUT_MISSING and "object changed since the event" in str(err)
    # unpinned, a failed If-Match is still the object changing mid-read: retryable as before
    err = translate_error(error("PreconditionFailed", 412), versioned.unpinned(), "read")
    assert err.exit_code == ExitCode.TRANSIENT_IO
