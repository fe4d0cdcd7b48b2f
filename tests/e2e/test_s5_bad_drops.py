"""Scenario 5: bad drops. Each ends as one clearly recorded failure (or works); none blocks the loop.

Not a BAM, a truncated BAM, zero bytes, a .bai without its BAM, keys with spaces, unicode, `..` and a
1,024-byte key; plus a message on the queue that is not an S3 event at all, which must reach the
dead-letter queue through the queue's redrive policy (maxReceiveCount 2 here) while work goes on.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.harness import MotoBatch, metric_sum, wait_for
from tests.support.pipeline import Figures, Pipeline

GARBAGE = "this is not an S3 event {"


def test_bad_drops_and_a_poison_message(
    mb: MotoBatch, tmp_path: Path, figures: Figures, data_dir: Path
) -> None:
    pipe = Pipeline.create(
        mb, tmp_path, max_receive_count=2, overrides={"ALIGNBATCH_QUEUE_VISIBILITY_TIMEOUT": "3"}
    )
    try:
        sqs = mb.client("sqs")
        queue_url = pipe.outputs["storage"]["InboxQueueUrl"]
        dlq_url = pipe.outputs["storage"]["DeadLetterQueueUrl"]
        bam = (data_dir / "i_edge.bam").read_bytes()
        pipe.controller.start().wait_ready()
        began = time.monotonic()
        sqs.send_message(QueueUrl=queue_url, MessageBody=GARBAGE)

        long_rel = "long/" + "x" * (1024 - len(pipe.inbox_prefix) - len("long/") - len(".bam")) + ".bam"
        assert len((pipe.inbox_prefix + long_rel).encode()) == 1024
        failing = {
            "bad/not_a_bam.bam": (data_dir / "h_not_bam.bam").read_bytes(),
            "bad/truncated.bam": (data_dir / "h_truncated.bam").read_bytes(),
            "bad/zero.bam": b"",
            "odd/../escape.bam": bam,
            long_rel: bam,
        }
        working = {
            "odd/with space.bam": bam,
            "odd/ünïcødé 样本.bam": bam,
        }
        orphan = pipe.put("bad/orphan.bam.bai", (data_dir / "i_edge.bam.bai").read_bytes())
        failed_keys = pipe.put_many(failing)
        ok_keys = pipe.put_many(working)
        figures.objects_dropped = len(failing) + len(working) + 1
        pipe.wait_settled(failed_keys + ok_keys, timeout=150)

        def in_dlq() -> list[str]:
            resp = sqs.receive_message(
                QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=0
            )
            return [m["Body"] for m in resp.get("Messages", [])]

        dead = wait_for("the poison message in the DLQ", in_dlq, 60, 0.5)
        figures.drain_seconds = time.monotonic() - began
        assert dead == [GARBAGE]

        runs = pipe.runs_by_key()
        figures.extra["reasons"] = {
            k[len(pipe.inbox_prefix) :][:40]: (runs[k][0]["reason"] or "")[:90] for k in failed_keys
        }
        assert orphan not in runs
        pipe.assert_exactly_once(ok_keys, failed=failed_keys)
        for key in ok_keys:
            assert pipe.get_result(pipe.report_key(key)) is not None, key
        metrics = pipe.controller.metrics()
        assert metric_sum(metrics, "alignbatch_events_total", outcome="malformed") >= 1
        assert metric_sum(metrics, "alignbatch_events_total", outcome="index_recorded") >= 1
        # The rejected keys were refused before any job: no Batch job carries them.
        rejected = [k for k in failed_keys if runs[k][0]["state"] == "rejected"]
        assert {pipe.inbox_prefix + "odd/../escape.bam", pipe.inbox_prefix + long_rel} <= set(rejected)
        assert not [j for j in pipe.jobs() if j["run_id"] in {runs[k][0]["run_id"] for k in rejected}]
    finally:
        pipe.controller.stop()


def test_key_with_characters_batch_tags_refuse_still_works(
    pipeline: Pipeline, figures: Figures, data_dir: Path
) -> None:
    """'%' (and other characters outside Batch's tag charset) are legal in S3 keys; the sample name
    derived from the key goes into job tags, so the controller must make it acceptable, and a
    submission Batch refuses must not wedge the submit loop for everyone else."""
    bam = (data_dir / "i_edge.bam").read_bytes()
    pipeline.controller.start().wait_ready()
    began = time.monotonic()
    odd = pipeline.put("odd/plus+and%25 #1.bam", bam)
    normal = pipeline.put("odd/normal-after-it.bam", bam)
    figures.objects_dropped = 2
    pipeline.wait_settled([odd, normal], timeout=90, states=("succeeded", "failed", "rejected"))
    figures.drain_seconds = time.monotonic() - began
    pipeline.assert_exactly_once([odd, normal])
