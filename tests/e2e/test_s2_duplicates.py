"""Scenario 2: every S3 event delivered two or three times, shuffled; visibility timeouts expire mid-work.

S3 and SQS both deliver at least once. The real notifications are taken off the queue and sent back as
2 or 3 copies each in random order; the visibility timeout is 2 s and some of the controller's SQS deletes
and S3 lookups are held for 3 s, so messages come back while their first delivery is still being handled.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.support.harness import MotoBatch, metric_sum
from tests.support.pipeline import Figures, Pipeline
from tests.support.workload import drop_bams, rng, seed


def _harvest(sqs: Any, url: str, expected: int) -> list[str]:
    bodies: list[str] = []
    deadline = time.monotonic() + 30
    while len(bodies) < expected and time.monotonic() < deadline:
        resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for msg in resp.get("Messages", []):
            bodies.append(msg["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
    return bodies


def test_duplicated_shuffled_events_and_expiring_visibility(
    mb: MotoBatch, tmp_path: Path, figures: Figures, data_dir: Path
) -> None:
    pipe = Pipeline.create(
        mb, tmp_path, max_receive_count=10, overrides={"ALIGNBATCH_QUEUE_VISIBILITY_TIMEOUT": "2"}
    )
    try:
        random = rng()
        figures.extra["seed"] = seed()
        keys = drop_bams(pipe, data_dir, 6, prefix="dup")
        figures.objects_dropped = len(keys)
        sqs = mb.client("sqs")
        url = pipe.outputs["storage"]["InboxQueueUrl"]
        # 6 BAM events + 3 .bai events + the s3:TestEvent moto sends when the notification is set.
        bodies = _harvest(sqs, url, expected=10)
        assert sum('"ObjectCreated' in b for b in bodies) == 9, bodies
        copies = [b for b in bodies for _ in range(random.choice((2, 3)))]
        random.shuffle(copies)
        for body in copies:
            sqs.send_message(QueueUrl=url, MessageBody=body)
        bam_copies = sum(1 for b in copies if '.bam"' in b and "ObjectCreated" in b)
        figures.duplicate_deliveries = len(copies) - len(bodies)

        mb.set_faults(
            [
                {
                    "api": "sqs:deletemessagebatch",
                    "kind": "delay",
                    "delay_seconds": 3,
                    "rate": 0.5,
                    "channel": "controller",
                },
                {
                    "api": "s3:headobject",
                    "kind": "delay",
                    "delay_seconds": 3,
                    "rate": 0.2,
                    "channel": "controller",
                },
            ],
            seed=seed(),
        )
        began = time.monotonic()
        pipe.controller.start().wait_ready()
        pipe.wait_settled(keys, timeout=180)
        # Let the redeliveries of the last messages come back and be recognised.
        time.sleep(6)
        figures.drain_seconds = time.monotonic() - began
        figures.add_faults(mb.injected_by_kind())
        metrics = pipe.controller.metrics()
        duplicates_seen = metric_sum(metrics, "alignbatch_events_total", outcome="duplicate")
        figures.extra["duplicate_events_counted"] = int(duplicates_seen)
        figures.duplicate_jobs = len(pipe.duplicate_batch_jobs())

        pipe.assert_exactly_once(keys)
        assert metric_sum(metrics, "alignbatch_runs_total", outcome="created") == len(keys)
        # Every extra copy of a BAM event was recognised as a duplicate (redeliveries add more).
        assert duplicates_seen >= bam_copies - len(keys), (duplicates_seen, bam_copies)
        assert json.loads(bodies[0])  # the copies were real S3 notification bodies
        pipe.assert_ledger_table_metrics_agree()
    finally:
        pipe.controller.stop()
