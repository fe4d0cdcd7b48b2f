"""Pure parsing of inbox notifications: S3 event bodies from SQS, SNS-wrapped S3 events, EventBridge.

Nothing here does I/O. `parse_message(body)` turns one queue message body into the object events it
carries (or marks it as an S3 test event); a body that cannot be understood raises `MalformedMessage`,
which the poll loop logs, counts and leaves on the queue so the redrive policy moves it to the DLQ.

Shapes handled:
- S3 notification: `{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "eventTime":
  ..., "s3": {"bucket": {"name": ...}, "object": {"key": <url-encoded>, "size", "eTag", "versionId",
  "sequencer"}}}, ...]}`. Keys are form-encoded by S3 (space -> "+"), so they go through `unquote_plus`.
- S3 test event: `{"Service": "Amazon S3", "Event": "s3:TestEvent", ...}` (sent when a notification is
  set up).
- SNS envelope: `{"Type": "Notification", "Message": "<one of the above as a JSON string>"}`.
- EventBridge: `{"source": "aws.s3", "detail-type": "Object Created", "time": ..., "detail": {"bucket":
  {"name"}, "object": {"key", "size", "etag", "version-id", "sequencer"}}}`; its key is not encoded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from urllib.parse import unquote_plus


class MalformedMessage(ValueError):
    """The body is not an event we understand; the message stays on the queue for redrive."""


class ObjectKind(Enum):
    ALIGNMENT = "alignment"  # .bam / .cram: starts a pipeline run
    INDEX = "index"  # .bai / .crai / .csi: recorded, satisfies an index dependency
    OTHER = "other"  # ignored (counted)


ALIGNMENT_SUFFIXES = (".bam", ".cram")
INDEX_SUFFIXES = (".bai", ".crai", ".csi")


@dataclass(frozen=True)
class ObjectEvent:
    """An object that was created in the inbox. `key` is decoded (the real object key)."""

    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None
    event_name: str
    event_time: datetime | None
    sequencer: str | None = None

    @property
    def kind(self) -> ObjectKind:
        return classify_key(self.key)

    @property
    def identity_version(self) -> str:
        """The version part of the object's identity: versionId when the bucket is versioned, else ETag."""
        return self.version_id or self.etag


@dataclass(frozen=True)
class ParsedMessage:
    events: tuple[ObjectEvent, ...]
    test_event: bool = False
    # Records that were well formed but not object creations (e.g. ObjectRemoved): ignored, counted.
    ignored_records: int = 0


def classify_key(key: str) -> ObjectKind:
    lower = key.lower()
    if lower.endswith(ALIGNMENT_SUFFIXES):
        return ObjectKind.ALIGNMENT
    if lower.endswith(INDEX_SUFFIXES):
        return ObjectKind.INDEX
    return ObjectKind.OTHER


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _load(body: str | bytes) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as exc:
        raise MalformedMessage(f"body is not JSON: {exc}") from None


def parse_message(body: str | bytes) -> ParsedMessage:
    """Parse one SQS message body into object events (pure; raises MalformedMessage)."""
    doc = _load(body)
    if not isinstance(doc, dict):
        raise MalformedMessage("body is JSON but not an object")
    if doc.get("Type") == "Notification" and "Message" in doc:
        inner = doc["Message"]
        if not isinstance(inner, str):
            raise MalformedMessage("SNS envelope 'Message' is not a string")
        doc = _load(inner)
        if not isinstance(doc, dict):
            raise MalformedMessage("SNS-wrapped message is not a JSON object")
    if doc.get("Event") == "s3:TestEvent":
        return ParsedMessage(events=(), test_event=True)
    if "Records" in doc:
        return _parse_s3_records(doc["Records"])
    if doc.get("source") == "aws.s3" and "detail" in doc:
        return _parse_eventbridge(doc)
    raise MalformedMessage("not an S3 notification, SNS envelope or EventBridge S3 event")


def _object_fields(obj: Any, where: str) -> tuple[str, int, str, str | None, str | None]:
    if not isinstance(obj, dict):
        raise MalformedMessage(f"{where}: missing object")
    key = obj.get("key")
    if not isinstance(key, str) or not key:
        raise MalformedMessage(f"{where}: missing object key")
    size = obj.get("size", 0)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise MalformedMessage(f"{where}: object size is not a non-negative integer")
    etag = obj.get("eTag", obj.get("etag", ""))
    version = obj.get("versionId", obj.get("version-id"))
    sequencer = obj.get("sequencer")
    if not isinstance(etag, str):
        raise MalformedMessage(f"{where}: eTag is not a string")
    version = version if isinstance(version, str) and version and version != "null" else None
    # Both are part of the object's identity (run id, ledger row): they must encode, as the key must.
    _utf8(etag, where, "eTag")
    _utf8(version or "", where, "versionId")
    return (
        key,
        size,
        etag.strip('"'),
        version,
        sequencer if isinstance(sequencer, str) else None,
    )


def _bucket_name(bucket: Any, where: str) -> str:
    name = bucket.get("name") if isinstance(bucket, dict) else None
    if not isinstance(name, str) or not name:
        raise MalformedMessage(f"{where}: missing bucket name")
    return _utf8(name, where, "bucket name")


def _utf8(text: str, where: str, what: str) -> str:
    """S3 names are UTF-8; a JSON body can still carry a lone surrogate ("\\ud800"), which no ledger row,
    run id or log line can encode. Such a record names no object: the message is malformed (DLQ)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedMessage(f"{where}: {what} {ascii(text)[:200]} is not valid UTF-8") from None
    return text


def _parse_s3_records(records: Any) -> ParsedMessage:
    if not isinstance(records, list) or not records:
        raise MalformedMessage("'Records' is not a non-empty list")
    events: list[ObjectEvent] = []
    ignored = 0
    for i, rec in enumerate(records):
        where = f"Records[{i}]"
        if not isinstance(rec, dict) or not isinstance(rec.get("s3"), dict):
            raise MalformedMessage(f"{where}: not an S3 record")
        name = rec.get("eventName")
        if not isinstance(name, str):
            raise MalformedMessage(f"{where}: missing eventName")
        if not name.startswith("ObjectCreated:"):
            ignored += 1
            continue
        s3 = rec["s3"]
        bucket = _bucket_name(s3.get("bucket"), where)
        key, size, etag, version, sequencer = _object_fields(s3.get("object"), where)
        events.append(
            ObjectEvent(
                bucket=bucket,
                key=_utf8(unquote_plus(key), where, "object key"),
                size=size,
                etag=etag,
                version_id=version,
                event_name=name,
                event_time=parse_time(rec.get("eventTime")),
                sequencer=sequencer,
            )
        )
    return ParsedMessage(events=tuple(events), ignored_records=ignored)


def _parse_eventbridge(doc: dict[str, Any]) -> ParsedMessage:
    if doc.get("detail-type") != "Object Created":
        return ParsedMessage(events=(), ignored_records=1)
    detail = doc["detail"]
    if not isinstance(detail, dict):
        raise MalformedMessage("EventBridge 'detail' is not an object")
    bucket = _bucket_name(detail.get("bucket"), "detail")
    key, size, etag, version, sequencer = _object_fields(detail.get("object"), "detail")
    return ParsedMessage(
        events=(
            ObjectEvent(
                bucket=bucket,
                key=_utf8(key, "detail", "object key"),
                size=size,
                etag=etag,
                version_id=version,
                event_name="ObjectCreated:" + str(detail.get("reason", "EventBridge")),
                event_time=parse_time(doc.get("time")),
                sequencer=sequencer,
            ),
        )
    )


def s3_notification_body(events: list[ObjectEvent] | tuple[ObjectEvent, ...]) -> str:
    """Render events as an S3 notification body (used by the local inbox and backfill so every event
    takes the same parse path as one from SQS)."""
    from urllib.parse import quote_plus

    records = []
    for ev in events:
        obj: dict[str, Any] = {"key": quote_plus(ev.key, safe="/"), "size": ev.size, "eTag": ev.etag}
        if ev.version_id:
            obj["versionId"] = ev.version_id
        if ev.sequencer:
            obj["sequencer"] = ev.sequencer
        records.append(
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": ev.event_name,
                "eventTime": (ev.event_time or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
                "s3": {"bucket": {"name": ev.bucket}, "object": obj},
            }
        )
    return json.dumps({"Records": records})


# -- Batch job state changes (EventBridge → SQS) --------------------------------------------------------
BATCH_STATE_CHANGE = "Batch Job State Change"


@dataclass(frozen=True)
class JobStateEvent:
    """One EventBridge "Batch Job State Change": what DescribeJobs would have said about the job then."""

    job_id: str
    job_name: str
    status: str
    reason: str | None
    exit_code: int | None
    log_stream: str | None
    started_at: float | None  # epoch seconds
    stopped_at: float | None
    event_time: datetime | None


def _ms(value: Any) -> float | None:
    return (
        float(value) / 1000.0
        if isinstance(value, int | float) and not isinstance(value, bool) and value
        else None
    )


def parse_job_state_change(body: str | bytes) -> JobStateEvent | None:
    """A "Batch Job State Change" event (directly, or in an SNS envelope); None for any other event.
    Raises MalformedMessage for a body that is not JSON or a state change without a job id or status."""
    doc = _load(body)
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        doc = _load(doc["Message"])
    if not isinstance(doc, dict) or doc.get("detail-type") != BATCH_STATE_CHANGE:
        return None
    detail = doc.get("detail")
    if not isinstance(detail, dict):
        raise MalformedMessage(f"{BATCH_STATE_CHANGE}: no detail object")
    job_id, status = detail.get("jobId"), detail.get("status")
    if not isinstance(job_id, str) or not job_id or not isinstance(status, str) or not status:
        raise MalformedMessage(f"{BATCH_STATE_CHANGE}: detail.jobId and detail.status are required")
    container = detail.get("container") if isinstance(detail.get("container"), dict) else {}
    attempts = detail.get("attempts") if isinstance(detail.get("attempts"), list) else []
    last = attempts[-1].get("container") if attempts and isinstance(attempts[-1], dict) else None
    last = last if isinstance(last, dict) else {}
    exit_code = container.get("exitCode", last.get("exitCode"))
    reason = detail.get("statusReason") or container.get("reason") or last.get("reason")
    return JobStateEvent(
        job_id=job_id,
        job_name=str(detail.get("jobName") or ""),
        status=status,
        reason=str(reason) if reason else None,
        exit_code=exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None,
        log_stream=container.get("logStreamName") or last.get("logStreamName") or None,
        started_at=_ms(detail.get("startedAt")),
        stopped_at=_ms(detail.get("stoppedAt")),
        event_time=parse_time(doc.get("time")),
    )


def job_state_change_body(
    ev: JobStateEvent, *, account: str = "123456789012", region: str = "us-east-1"
) -> str:
    """The EventBridge body AWS sends for `ev` (tests and benchmarks send these; moto emits none)."""
    detail: dict[str, Any] = {"jobId": ev.job_id, "jobName": ev.job_name, "status": ev.status}
    if ev.reason:
        detail["statusReason"] = ev.reason
    container: dict[str, Any] = {}
    if ev.exit_code is not None:
        container["exitCode"] = ev.exit_code
    if ev.log_stream:
        container["logStreamName"] = ev.log_stream
    detail["container"] = container
    for name, value in (("startedAt", ev.started_at), ("stoppedAt", ev.stopped_at)):
        if value:
            detail[name] = int(value * 1000)
    when = (ev.event_time or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({
        "version": "0", "id": f"{ev.job_id}-{ev.status}", "detail-type": BATCH_STATE_CHANGE,
        "source": "aws.batch", "account": account, "time": when, "region": region,
        "resources": [f"arn:aws:batch:{region}:{account}:job/{ev.job_id}"], "detail": detail,
    })  # fmt: skip
