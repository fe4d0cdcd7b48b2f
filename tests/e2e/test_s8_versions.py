"""Scenario 8 (#14): two versions of one key in quick succession on a versioned inbox, then the key
deleted while their runs are in flight. Each version gets its own run, reads its own content (the input
is pinned with ?versionId=), keeps its own report, and the table shows the newer version.

moto's S3 notifications carry no versionId (AWS's do): the test takes them off the queue and puts them
back with the versionId and sequencer S3 would have sent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.support.harness import MotoBatch
from tests.support.pipeline import Figures, Pipeline


def test_two_versions_of_a_key_get_a_run_and_a_report_each_and_the_table_shows_the_newer(
    mb: MotoBatch, tmp_path: Path, figures: Figures, data_dir: Path
) -> None:
    pipe = Pipeline.create(mb, tmp_path)
    try:
        s3, sqs = mb.client("s3"), mb.client("sqs")
        s3.put_bucket_versioning(Bucket=pipe.inbox_bucket, VersioningConfiguration={"Status": "Enabled"})
        key = pipe.inbox_prefix + "ver/sample.bam"
        contents = {
            "v1": (data_dir / "i_edge.bam").read_bytes(),
            "v2": (data_dir / "h_source.bam").read_bytes(),
        }
        versions = {
            name: s3.put_object(Bucket=pipe.inbox_bucket, Key=key, Body=body)["VersionId"]
            for name, body in contents.items()
        }
        url = pipe.outputs["storage"]["InboxQueueUrl"]
        bodies: list[dict] = []
        deadline = time.monotonic() + 30
        while len(bodies) < 2 and time.monotonic() < deadline:
            for msg in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            ):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
                doc = json.loads(msg["Body"])
                if any(r.get("eventName", "").startswith("ObjectCreated") for r in doc.get("Records", [])):
                    bodies.append(doc)
        assert len(bodies) == 2, bodies
        for seq, (doc, version) in enumerate(zip(bodies, versions.values(), strict=True)):
            doc["Records"][0]["s3"]["object"].update(versionId=version, sequencer=f"00{seq + 1:016X}")
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(doc))

        pipe.controller.start().wait_ready()
        # Deleted while the runs are in flight: a delete marker; each run still reads its version.
        s3.delete_object(Bucket=pipe.inbox_bucket, Key=key)
        pipe.wait_settled([key], timeout=180)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and sum(r["state"] == "succeeded" for r in pipe.runs()) < 2:
            time.sleep(1)
        runs = pipe.runs_by_key()[key]
        assert sorted(r["state"] for r in runs) == ["succeeded", "succeeded"], pipe.explain_failures()
        figures.objects_dropped = 2

        reports = {}
        for name, version in versions.items():
            rel = f"{pipe.results_prefix}reports/ver/sample.bam@{version}.alignstats.json"
            raw = pipe.get_result(rel)
            assert raw is not None, f"no report for {name} at {rel}"
            reports[name] = json.loads(raw)
        assert reports["v1"] != reports["v2"]  # different content, so different statistics
        rows = {}
        for run in runs:
            raw = pipe.get_result(f"{pipe.results_prefix}rows/{run['run_id']}.json")
            assert raw is not None
            row = json.loads(raw)
            rows[row["input_version_id"]] = row
        assert set(rows) == set(versions.values())
        for version in versions.values():
            assert rows[version]["input_uri"].endswith(f"?versionId={version}")
        deadline = time.monotonic() + 30
        table: list[dict] = []
        while time.monotonic() < deadline:
            table = [r for r in pipe.results_table() if r.get("input_version_id") in rows]
            if table:
                break
            time.sleep(1)
        assert [r["input_version_id"] for r in table] == [versions["v2"]]
        assert pipe.duplicate_batch_jobs() == {}
    finally:
        pipe.controller.stop()
