"""Optional shipping of the controller's JSON log lines to CloudWatch Logs (`[logging] cloudwatch_group`).

Lines still go to stdout (journald stays the primary record); a copy is queued and a background thread
sends batches with PutLogEvents every few seconds (or sooner when a batch fills: 10,000 events or ~1 MB,
the API's limits). The group must exist (the stack creates it with its retention); the stream is created
when missing. When `cloudwatch_retention_days` is set, events older than the retention are dropped
instead of being rejected by the API. A failing CloudWatch never blocks or breaks the controller: the
queue is bounded and overflow is counted and dropped.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import sys
import threading
import time
from typing import Any, TextIO

from controller.config import ControllerConfig

MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_000_000  # below the 1,048,576-byte limit, with the 26 bytes/event overhead
EVENT_OVERHEAD = 26


class CloudWatchShipper:
    def __init__(
        self,
        group: str,
        stream: str,
        *,
        client: Any = None,
        region: str | None = None,
        flush_seconds: float = 5.0,
        retention_days: int = 0,
        max_queue: int = 100_000,
    ) -> None:
        if client is None:
            from controller.aws import aws_client

            # botocore's default budget (5 attempts); a batch that still fails is counted and dropped.
            client = aws_client("logs", region, retry_mode="standard", max_attempts=5)
        self.client, self.group, self.stream = client, group, stream
        self.flush_seconds = flush_seconds
        self.retention_days = retention_days
        self.queue: queue.Queue[tuple[int, str]] = queue.Queue(maxsize=max_queue)
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cloudwatch-logs", daemon=True)
        self._stream_ready = False

    def start(self) -> CloudWatchShipper:
        self._thread.start()
        return self

    def emit(self, line: str) -> None:
        line = line.rstrip("\n")
        if not line:
            return
        try:
            self.queue.put_nowait((int(time.time() * 1000), line[:256_000]))
        except queue.Full:
            self.dropped += 1

    def _ensure_stream(self) -> None:
        if self._stream_ready:
            return
        with contextlib.suppress(self.client.exceptions.ResourceAlreadyExistsException):
            self.client.create_log_stream(logGroupName=self.group, logStreamName=self.stream)
        self._stream_ready = True

    def _batch(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        size = 0
        oldest_ok = (time.time() - self.retention_days * 86400) * 1000 if self.retention_days else 0
        while len(events) < MAX_BATCH_EVENTS:
            try:
                ts, msg = self.queue.get_nowait()
            except queue.Empty:
                break
            if ts < oldest_ok:
                continue
            n = len(msg.encode("utf-8")) + EVENT_OVERHEAD
            if size + n > MAX_BATCH_BYTES and events:
                self.queue.put((ts, msg))  # next batch (order within a batch is what the API requires)
                break
            events.append({"timestamp": ts, "message": msg})
            size += n
        events.sort(key=lambda e: e["timestamp"])
        return events

    def flush(self) -> int:
        sent = 0
        while True:
            events = self._batch()
            if not events:
                return sent
            try:
                self._ensure_stream()
                self.client.put_log_events(
                    logGroupName=self.group, logStreamName=self.stream, logEvents=events
                )
                sent += len(events)
            except Exception as exc:  # never let log shipping take the controller down
                self.dropped += len(events)
                print(
                    f'{{"event": "cloudwatch.ship_failed", "error": "{type(exc).__name__}"}}', file=sys.stderr
                )
                return sent

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()
        self.flush()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class TeeStream:
    """A text stream that writes to `primary` and hands each complete line to the shipper."""

    def __init__(self, primary: TextIO, shipper: CloudWatchShipper) -> None:
        self.primary, self.shipper = primary, shipper
        self._buf = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        n = self.primary.write(text)
        with self._lock:
            self._buf += text
            while "\n" in self._buf:
                line, self._buf = self._buf.split("\n", 1)
                self.shipper.emit(line)
        return n

    def flush(self) -> None:
        self.primary.flush()


def install_cloudwatch_shipping(cfg: ControllerConfig, *, level: str | None = None) -> CloudWatchShipper:
    """Point the controller's structlog output (JSON lines) at stdout + CloudWatch; `level` overrides
    the config's (run --log-level)."""
    from core.logs import configure_logging

    stream = cfg.logging.cloudwatch_stream or f"controller/{socket.gethostname()}/{os.getpid()}"
    shipper = CloudWatchShipper(
        cfg.logging.cloudwatch_group,
        stream,
        region=cfg.aws.region or None,
        retention_days=cfg.logging.cloudwatch_retention_days,
    ).start()
    configure_logging(
        stream=TeeStream(sys.stdout, shipper),  # type: ignore[arg-type]
        level=level or cfg.logging.level,
        json=True,
        service="alignbatch-controller",
    )
    return shipper
