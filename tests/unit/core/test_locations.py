"""Location parsing: strict, verbatim keys, one-line errors."""

from __future__ import annotations

import pytest

from core.locations import Location, LocationError, is_s3_uri, looks_remote, parse_location


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://bucket/key.bam", Location("s3", bucket="bucket", key="key.bam")),
        ("s3://my.bucket-1/a/b c/ü.bam", Location("s3", bucket="my.bucket-1", key="a/b c/ü.bam")),
        ("s3://bkt/a/../b", Location("s3", bucket="bkt", key="a/../b")),
        ("S3://bkt/k", Location("s3", bucket="bkt", key="k")),
        ("file:///abs/x.bam", Location("file", path="/abs/x.bam")),
        ("file://rel/x.bam", Location("file", path="rel/x.bam")),
        ("file://localhost/abs/x", Location("file", path="/abs/x")),
        ("x.bam", Location("file", path="x.bam")),
        ("/data/with space.bam", Location("file", path="/data/with space.bam")),
        ("-", Location("file", path="-")),
    ],
)
def test_parse_accepts(text: str, expected: Location) -> None:
    assert parse_location(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("s3://", "no bucket"),
        ("s3://bucket", "names a bucket"),
        ("s3://bucket/", "names a bucket"),
        ("s3://bucket/dir/", "prefix"),
        ("s3://Bad_Bucket/k", "not a valid S3 bucket"),
        ("s3://ab/k", "not a valid S3 bucket"),
        ("gs://bucket/k", "unsupported"),
        ("https://host/x", "unsupported"),
        ("file://", "names no file"),
        ("", "empty"),
        ("s3://bkt/a\nb", "control"),
        ("s3://bkt/" + "k" * 1025, "longer than"),
    ],
)
def test_parse_rejects_with_one_line(text: str, fragment: str) -> None:
    with pytest.raises(LocationError) as info:
        parse_location(text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_prefix_allowed_for_listing() -> None:
    assert parse_location("s3://bkt", allow_prefix=True) == Location("s3", bucket="bkt", key="")
    assert parse_location("s3://bkt/p/", allow_prefix=True).key == "p/"


def test_str_round_trips() -> None:
    for text in ("s3://bkt/a b/ü.bam", "/x/y.bam", "rel/y"):
        assert str(parse_location(text)) == text
    assert str(parse_location("file:///x/y")) == "/x/y"


def test_derivations() -> None:
    loc = parse_location("s3://bkt/dir/x.bam")
    assert loc.name == "x.bam"
    assert loc.suffix == ".bam"
    assert str(loc.add_suffix(".bai")) == "s3://bkt/dir/x.bam.bai"
    assert str(loc.with_suffix(".bai")) == "s3://bkt/dir/x.bai"
    assert str(loc.parent) == "s3://bkt/dir/"
    assert str(loc.parent.join("y.json")) == "s3://bkt/dir/y.json"
    assert str(Location.s3("bkt", "").join("a/b")) == "s3://bkt/a/b"
    assert str(Location.s3("bkt", "p").join("/a")) == "s3://bkt/p/a"
    local = parse_location("/d/x.cram")
    assert str(local.add_suffix(".crai")) == "/d/x.cram.crai"
    assert str(local.with_suffix(".crai")) == "/d/x.crai"
    assert str(local.parent) == "/d"
    assert str(local.parent.join("r/x.json")) == "/d/r/x.json"


def test_local_join_refuses_escape() -> None:
    with pytest.raises(LocationError, match=r"'\.\.'"):
        Location.file("/results").join("a/../../etc/passwd")


def test_scheme_helpers() -> None:
    assert is_s3_uri("s3://b/k") and is_s3_uri("S3://b/k") and not is_s3_uri("/s3://x")
    assert looks_remote("gs://b/k") and looks_remote("s3://b/k")
    assert not looks_remote("file:///x") and not looks_remote("/x") and not looks_remote("chr1:1-100")


def test_a_trailing_version_or_etag_query_pins_the_object() -> None:
    loc = parse_location("s3://bkt/dir/x.bam?versionId=3HL4kqtJ.lc_p-X+r=")
    assert (loc.key, loc.version_id, loc.expected_etag) == ("dir/x.bam", "3HL4kqtJ.lc_p-X+r=", None)
    assert loc.name == "x.bam" and loc.suffix == ".bam" and loc.pinned
    assert str(loc) == "s3://bkt/dir/x.bam?versionId=3HL4kqtJ.lc_p-X+r="  # round-trips
    assert str(loc.unpinned()) == "s3://bkt/dir/x.bam"
    tagged = parse_location("s3://bkt/x.bam?etag=9b2cf535f27731c974343645a3985328-3")
    assert (tagged.key, tagged.version_id, tagged.expected_etag) == (
        "x.bam",
        None,
        "9b2cf535f27731c974343645a3985328-3",
    )
    assert str(tagged) == "s3://bkt/x.bam?etag=9b2cf535f27731c974343645a3985328-3"
    # a companion or a sibling is another object: it never inherits the pin
    assert not loc.add_suffix(".bai").pinned and not loc.with_suffix(".bai").pinned
    assert not loc.parent.pinned


def test_a_key_with_a_question_mark_is_still_a_key() -> None:
    for text in (
        "s3://bkt/what?.bam",
        "s3://bkt/a?b=c",
        "s3://bkt/x?versionId=has space",  # not a version id's characters: part of the key
        "s3://bkt/x?etag=not+hex",
        "s3://bkt/x?versionid=lowercase",
        "s3://bkt/x?versionId=1&etag=2",
    ):
        loc = parse_location(text)
        assert loc.key == text[len("s3://bkt/") :] and not loc.pinned
        assert str(loc) == text
    # a key that itself ends like a pin is named pinned: only the last query is parsed
    loc = parse_location("s3://bkt/k?etag=1?versionId=V")
    assert (loc.key, loc.version_id) == ("k?etag=1", "V")
    # local paths are never parsed for a query
    assert parse_location("/d/x.bam?versionId=1").path == "/d/x.bam?versionId=1"


def test_an_empty_or_misplaced_pin_is_refused() -> None:
    with pytest.raises(LocationError, match="empty versionId"):
        parse_location("s3://bkt/x.bam?versionId=")
    with pytest.raises(LocationError, match="empty etag"):
        parse_location("s3://bkt/x.bam?etag=")
    with pytest.raises(LocationError, match="prefix cannot be pinned"):
        parse_location("s3://bkt/?versionId=1", allow_prefix=True)
    with pytest.raises(LocationError, match="not both"):
        Location.s3("bkt", "k", version_id="1", expected_etag="2")
