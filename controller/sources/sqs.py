"""SQS event source: long-poll receive (20 s, 10 messages), delete after commit, visibility extension."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from controller.aws import aws_client, count_throttles
from controller.sources.base import Message


def sqs_client(region: str | None = None) -> Any:
    # read_timeout must exceed the long-poll wait or every empty poll would look like a network error.
    return aws_client(
        "sqs", region, retry_mode="adaptive", max_attempts=8, connect_timeout=10, read_timeout=40
    )


class SqsSource:
    kind = "sqs"
    unsettled = 0  # S3 notifies once an object is complete: nothing is held back

    def __init__(
        self,
        queue_url: str,
        *,
        dlq_url: str = "",
        wait_seconds: int = 20,
        visibility_timeout: int = 900,
        client: Any = None,
        region: str | None = None,
        on_throttle: Callable[[str], None] | None = None,
    ) -> None:
        self.queue_url = queue_url
        self.dlq_url = dlq_url
        self.wait_seconds = wait_seconds
        self.visibility_timeout = visibility_timeout
        self.client = client if client is not None else sqs_client(region)
        if on_throttle is not None:
            count_throttles(self.client, on_throttle)

    def receive(self, max_messages: int = 10) -> list[Message]:
        resp = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            WaitTimeSeconds=self.wait_seconds,
            VisibilityTimeout=self.visibility_timeout,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        )
        out = []
        for m in resp.get("Messages", []):
            attrs = m.get("Attributes", {})
            sent = attrs.get("SentTimestamp")
            out.append(
                Message(
                    message_id=m["MessageId"],
                    body=m.get("Body", ""),
                    receipt=m["ReceiptHandle"],
                    receive_count=int(attrs.get("ApproximateReceiveCount", "1")),
                    sent_at=int(sent) / 1000.0 if sent else None,
                )
            )
        return out

    def ack(self, messages: Sequence[Message]) -> None:
        for i in range(0, len(messages), 10):
            chunk = messages[i : i + 10]
            resp = self.client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m.receipt} for n, m in enumerate(chunk)],
            )
            failed = resp.get("Failed") or []
            if failed:
                # The message will come back; the ledger makes the redelivery a counted duplicate.
                raise RuntimeError(
                    f"SQS delete failed for {len(failed)} message(s): {failed[0].get('Message')}"
                )

    def release(self, messages: Sequence[Message]) -> None:
        # An unacknowledged message reappears when its visibility timeout ends (the redrive counts it).
        return None

    def extend(self, messages: Sequence[Message], seconds: int) -> None:
        for i in range(0, len(messages), 10):
            chunk = messages[i : i + 10]
            self.client.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m.receipt, "VisibilityTimeout": seconds}
                    for n, m in enumerate(chunk)
                ],
            )

    def depth(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for name, url in (("inbox", self.queue_url), ("dlq", self.dlq_url)):
            if not url:
                continue
            attrs = self.client.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            out[(name, "visible")] = int(attrs.get("ApproximateNumberOfMessages", 0))
            out[(name, "in_flight")] = int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))
        return out
