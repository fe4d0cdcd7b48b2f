"""Pure parsing of inbox notifications (S3 via SQS, SNS-wrapped, EventBridge), property-tested."""

from __future__ import annotations

import contextlib
import json
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.events import (
    MalformedMessage,
    ObjectEvent,
    ObjectKind,
    classify_key,
    parse_message,
    s3_notification_body,
)


def s3_record(key: str, *, name: str = "ObjectCreated:Put", bucket: str = "inbox", size: int = 10,
              etag: str = "abc", encode=quote_plus) -> dict:  # fmt: skip
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": name,
        "eventTime": "2026-11-25T10:00:00.000Z",
        "s3": {"bucket": {"name": bucket}, "object": {"key": encode(key), "size": size, "eTag": etag}},
    }


def test_records_multiple_per_message_and_decoding() -> None:
    body = json.dumps({"Records": [s3_record("in/a b+c.bam"), s3_record("in/x.bam.bai", etag='"e1"')]})
    parsed = parse_message(body)
    assert [e.key for e in parsed.events] == ["in/a b+c.bam", "in/x.bam.bai"]
    assert parsed.events[1].etag == "e1"
    assert parsed.events[0].kind is ObjectKind.ALIGNMENT
    assert parsed.events[1].kind is ObjectKind.INDEX
    assert parsed.events[0].event_time is not None and parsed.events[0].event_time.year == 2026


def test_moto_style_slash_encoding() -> None:
    # moto encodes '/' as %2F; real S3 leaves it. unquote_plus handles both.
    record = s3_record("dir/sub/x.bam", encode=lambda k: quote(k, safe=""))
    parsed = parse_message(json.dumps({"Records": [record]}))
    assert parsed.events[0].key == "dir/sub/x.bam"


def test_test_event_is_acknowledged() -> None:
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "inbox"})
    parsed = parse_message(body)
    assert parsed.test_event and parsed.events == ()


def test_sns_wrapped() -> None:
    inner = json.dumps({"Records": [s3_record("x.cram")]})
    parsed = parse_message(json.dumps({"Type": "Notification", "Message": inner, "TopicArn": "arn:x"}))
    assert parsed.events[0].key == "x.cram"
    sns_test = json.dumps({"Type": "Notification", "Message": json.dumps({"Event": "s3:TestEvent"})})
    assert parse_message(sns_test).test_event


def test_eventbridge_object_created() -> None:
    body = {
        "version": "0",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "time": "2026-11-25T10:00:00Z",
        "detail": {
            "bucket": {"name": "inbox"},
            "object": {"key": "a b.bam", "size": 5, "etag": "e", "version-id": "v1"},
            "reason": "PutObject",
        },
    }
    ev = parse_message(json.dumps(body)).events[0]
    assert (ev.key, ev.version_id, ev.identity_version) == ("a b.bam", "v1", "v1")
    body["detail-type"] = "Object Deleted"
    parsed = parse_message(json.dumps(body))
    assert parsed.events == () and parsed.ignored_records == 1


def test_removed_records_are_ignored_not_malformed() -> None:
    parsed = parse_message(json.dumps({"Records": [s3_record("x.bam", name="ObjectRemoved:Delete")]}))
    assert parsed.events == () and parsed.ignored_records == 1


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[]",
        "42",
        json.dumps({"Records": []}),
        json.dumps({"Records": "x"}),
        json.dumps({"Records": [{"s3": {}}]}),
        json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {}, "object": {}}}]}),
        json.dumps({"Records": [s3_record("x.bam", size=-1)]}),
        json.dumps({"Type": "Notification", "Message": "{"}),
        json.dumps({"hello": "world"}),
    ],
)
def test_malformed_bodies_raise(body: str) -> None:
    with pytest.raises(MalformedMessage):
        parse_message(body)


def test_classify() -> None:
    assert classify_key("A.BAM") is ObjectKind.ALIGNMENT
    assert classify_key("x.cram") is ObjectKind.ALIGNMENT
    assert classify_key("x.csi") is ObjectKind.INDEX
    assert classify_key("x.crai") is ObjectKind.INDEX
    assert classify_key("x.bam.md5") is ObjectKind.OTHER
    assert classify_key("bam") is ObjectKind.OTHER


keys = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(keys, st.integers(0, 2**50), st.text(max_size=40)), min_size=1, max_size=12))
def test_any_key_round_trips_through_s3_encoding(items: list[tuple[str, int, str]]) -> None:
    records = [s3_record(k, size=size, etag=etag.replace('"', "")) for k, size, etag in items]
    parsed = parse_message(json.dumps({"Records": records}))
    assert [(e.key, e.size) for e in parsed.events] == [(k, s) for k, s, _ in items]


@settings(max_examples=200, deadline=None)
@given(st.lists(keys, min_size=1, max_size=5), st.booleans())
def test_render_then_parse_is_identity(key_list: list[str], sns: bool) -> None:
    events = tuple(ObjectEvent("b", k, 1, "e", None, "ObjectCreated:Put", None) for k in key_list)
    body = s3_notification_body(events)
    if sns:
        body = json.dumps({"Type": "Notification", "Message": body})
    assert [e.key for e in parse_message(body).events] == key_list


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=20,
).map(json.dumps)))  # fmt: skip
def test_parser_never_crashes_with_anything_but_malformed(body: str | bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        parse_message(body)


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"Records": [s3_record("x\ud800.bam", encode=str)]}),
        json.dumps({"Records": [s3_record("x.bam", etag="\udcff")]}),
        json.dumps({"source": "aws.s3", "detail-type": "Object Created",
                    "detail": {"bucket": {"name": "b"}, "object": {"key": "\udcff.bam", "size": 1}}}),
        json.dumps({"Type": "Notification",
                    "Message": json.dumps({"Records": [s3_record("\ud800.bam", encode=str)]})}),
    ],
)  # fmt: skip
def test_a_name_that_is_not_utf8_is_a_malformed_message(body: str) -> None:
    # No S3 object has such a name, and no ledger row or run id can hold one: the DLQ keeps the body.
    with pytest.raises(MalformedMessage, match="not valid UTF-8"):
        parse_message(body)
