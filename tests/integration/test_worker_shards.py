"""Fan-out through the worker (#17), as the controller's Batch jobs run it: N shard children (each
finding its index in AWS_BATCH_JOB_ARRAY_INDEX) write parts under a prefix, one merge job writes the
report, and that report is the single job's, byte for byte. Against the moto server over HTTP (a
versioned inbox, inputs pinned to their version) and with local paths.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest

from tests.support.worker_helpers import Result, run_worker

N = 3
PREFIX = "s3://res/parts/a_wgs/0123abcd/"
KEY = "runs/a_wgs.bam"
INDEX = "s3://res/indexes/a_wgs.bam.bai"


@pytest.fixture()
def s3(aws: str, refdata: Path):  # type: ignore[no-untyped-def]
    client = boto3.client("s3")
    for bucket in ("inbox", "res", "ref"):
        client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket="inbox", VersioningConfiguration={"Status": "Enabled"})
    client.upload_file(str(refdata / "a_wgs.bam.bai"), "inbox", KEY + ".bai")
    client.upload_file(str(refdata / "a_wgs.bam.bai"), "res", INDEX[len("s3://res/") :])
    client.upload_file(str(refdata / "targets.bed"), "ref", "targets.bed")
    return client


def _put_bam(s3, refdata: Path) -> str:  # type: ignore[no-untyped-def]
    return str(s3.put_object(Bucket="inbox", Key=KEY, Body=(refdata / "a_wgs.bam").read_bytes())["VersionId"])


def _child(args: list[str], scratch: Path, i: int, **env: str) -> Result:
    # moto does not set the array index (EMULATION.md); Batch does, and gives each child its own job id
    return run_worker(
        ["--", "alignstats", "--shard-of", str(N), *args],
        scratch,
        AWS_BATCH_JOB_ARRAY_INDEX=str(i),
        AWS_BATCH_JOB_ID=f"parent-job:{i}",
        AWS_BATCH_JOB_ATTEMPT="1",
        **env,
    )


def _one_line_usage_error(res: Result, text: str) -> None:
    assert res.code == 64, res.stderr
    assert len(res.logs) == 1 and res.last["event"] == "worker_failed"  # one line, no traceback
    assert text in res.last["error"], res.last["error"]


def test_shard_children_and_merge_give_the_single_report_fetching_only_their_ranges(  # type: ignore[no-untyped-def]
    s3, scratch: Path, refdata: Path
) -> None:
    version = _put_bam(s3, refdata)
    uri = f"s3://inbox/{KEY}?versionId={version}"
    size = (refdata / "a_wgs.bam").stat().st_size
    opts = ["-t", "s3://ref/targets.bed"]  # a staged BED: its path is in every part and must agree
    fetched = []
    for i in range(N):
        # one child with two vCPUs: the engine's contig-parallel run inside a child (worker/cpus.py)
        extra = {"ALIGNBATCH_JOB_VCPUS": "2"} if i == 0 else {}
        if i == 2:  # the index where the controller put it, not next to the object
            shard_args = ["--shard-of", str(N), "--shard-index", "2", "--part-out", PREFIX, *opts, "-i", uri]
            res = run_worker(["--index", INDEX, "--", "alignstats", *shard_args], scratch)
            index_size = (refdata / "a_wgs.bam.bai").stat().st_size
            assert [t["bytes"] for t in res.events("transfer") if t["source"] == INDEX] == [index_size]
        else:
            res = _child(["--part-out", PREFIX, *opts, "-i", uri], scratch, i, **extra)
        assert res.code == 0, res.stderr
        [staged] = res.events("shard.staged")
        assert staged["object_size"] == size and staged["bytes_fetched"] < size
        assert staged["bytes_fetched"] == sum(end - start for start, end in staged["ranges"])
        [main] = [t for t in res.events("transfer") if t["source"] == uri]
        assert main["bytes"] == staged["bytes_fetched"] and main["version_id"] == version
        assert main["verified"] == "ranges-size"
        assert res.last["mode"] == "ranges" and res.last["bytes_in"] < size
        fetched.append(staged["bytes_fetched"])
        [start] = res.events("tool_start")
        assert start["engine"] == "alignbatch-alignstats" and "--shard-index" in start["argv"]
        assert start["cwd"].startswith(str(scratch)) and "in/2/a_wgs.bam" in start["argv"]  # relative
    assert sum(fetched) < 1.2 * size  # the children together read the object about once
    parts = [f"{PREFIX}part-{i}-of-{N}.json" for i in range(N)]
    listed = s3.list_objects_v2(Bucket="res", Prefix="parts/a_wgs/0123abcd/")["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(p[len("s3://res/") :] for p in parts)

    merged = run_worker(
        ["--", "alignstats", "--merge-parts", "-o", "s3://res/reports/m.json", *parts], scratch
    )
    assert merged.code == 0, merged.stderr
    single = run_worker(["--", "alignstats", *opts, "-i", uri, "-o", "s3://res/reports/s.json"], scratch)
    assert single.code == 0, single.stderr
    got = s3.get_object(Bucket="res", Key="reports/m.json", ChecksumMode="ENABLED")
    want = s3.get_object(Bucket="res", Key="reports/s.json")["Body"].read()
    body = got["Body"].read()
    assert body == want
    assert json.loads(body)["InputFileName"] == f"s3://inbox/{KEY}"  # as given, minus the pin
    assert body.split(b"\n")[3:] == (refdata / "golden" / "a_wgs__t.json").read_bytes().split(b"\n")[3:]
    # uploaded as a single run's report is
    assert got["ServerSideEncryption"] == "AES256" and got.get("ChecksumCRC64NVME")
    assert got["ContentType"] == "application/json" and got["Metadata"]["alignbatch-inputs"]

    # a retried child whose part is there does no work and reads no input: even a deleted version is fine
    s3.delete_object(Bucket="inbox", Key=KEY, VersionId=version)
    again = _child(["--part-out", PREFIX, *opts, "-i", uri], scratch, 1)
    assert again.code == 0, again.stderr
    [present] = again.events("shard.part_present")
    assert present["part"] == parts[1]
    assert (
        not again.events("transfer") and not again.events("shard.staged") and not again.events("tool_start")
    )
    # ... while the child whose part is missing does: the deleted version is now the input's absence (66)
    s3.delete_object(Bucket="res", Key="parts/a_wgs/0123abcd/part-2-of-3.json")
    assert _child(["--part-out", PREFIX, *opts, "-i", uri], scratch, 2).code == 66


def test_fan_out_usage_errors_and_refusals(s3, scratch: Path, refdata: Path) -> None:  # type: ignore[no-untyped-def]
    version = _put_bam(s3, refdata)
    uri = f"s3://inbox/{KEY}?versionId={version}"
    # --part-out must be a prefix ending in '/'
    res = _child(["--part-out", "s3://res/parts/a_wgs/0123abcd", "-C", "-i", uri], scratch, 0)
    _one_line_usage_error(res, "ending in '/'")
    res = _child(["--part-out", PREFIX, "-C", "-r", "s3://ref/targets.bed", "-i", uri], scratch, 0)
    _one_line_usage_error(res, "cannot shard: -r reads records region by region")
    res = _child(["--part-out", PREFIX, "-C", "-i", uri], scratch, 3)  # AWS_BATCH_JOB_ARRAY_INDEX=3 of 3
    _one_line_usage_error(res, "cannot shard: shard index 3 outside 0..2")
    res = run_worker(
        [
            "--stream",
            "--",
            "alignstats",
            "--shard-of",
            "2",
            "--shard-index",
            "0",
            "--part-out",
            PREFIX,
            "-i",
            uri,
        ],
        scratch,
    )
    _one_line_usage_error(res, "--stream is not possible")
    # refused by what the input is (after its HEAD and header probe), before anything large moves
    s3.upload_file(str(refdata / "b_wgs.cram"), "inbox", "b.cram")
    s3.upload_file(str(refdata / "b_wgs.cram.crai"), "inbox", "b.cram.crai")
    res = _child(["--part-out", PREFIX, "-C", "-i", "s3://inbox/b.cram"], scratch, 0)
    assert res.code == 64 and "cannot shard: s3://inbox/b.cram is CRAM, not BAM" in res.last["error"]
    assert not res.events("shard.staged")
    s3.copy_object(Bucket="inbox", Key="noindex/a.bam", CopySource={"Bucket": "inbox", "Key": KEY})
    res = _child(["--part-out", PREFIX, "-C", "-i", "s3://inbox/noindex/a.bam"], scratch, 0)
    assert res.code == 64 and "cannot shard: no .bai/.csi index next to" in res.last["error"], res.stderr
    assert not [t for t in res.events("transfer") if t["source"] == "s3://inbox/noindex/a.bam"]


def test_local_paths(scratch: Path, refdata: Path, tmp_path: Path) -> None:
    bam = tmp_path / "in" / "a_wgs.bam"
    bam.parent.mkdir()
    shutil.copy(refdata / "a_wgs.bam", bam)
    shutil.copy(refdata / "a_wgs.bam.bai", f"{bam}.bai")
    bed = refdata / "targets.bed"
    prefix = f"{tmp_path}/parts/d1/"
    for i in range(N):
        res = _child(["--part-out", prefix, "-t", str(bed), "-i", str(bam)], scratch, i)
        assert res.code == 0, res.stderr
        assert res.last["mode"] == "local" and res.last["bytes_in"] == 0  # read in place
    parts = sorted(str(p) for p in (tmp_path / "parts" / "d1").iterdir())
    assert [Path(p).name for p in parts] == [f"part-{i}-of-{N}.json" for i in range(N)]
    merged, single = tmp_path / "merged.json", tmp_path / "single.json"
    res = run_worker(["--", "alignstats", "--merge-parts", "-o", str(merged), *parts], scratch)
    assert res.code == 0, res.stderr
    res = run_worker(["--", "alignstats", "-t", str(bed), "-i", str(bam), "-o", str(single)], scratch)
    assert res.code == 0, res.stderr
    assert merged.read_bytes() == single.read_bytes()
    assert json.loads(merged.read_bytes())["InputFileName"] == str(bam)

    # a child whose part is present reads nothing: the input may even be gone
    bam.rename(bam.with_name("moved.bam"))
    res = _child(["--part-out", prefix, "-t", str(bed), "-i", str(bam)], scratch, 0)
    assert res.code == 0 and res.events("shard.part_present") and not res.events("tool_start"), res.stderr
    bam.with_name("moved.bam").rename(bam)
    _one_line_usage_error(
        _child(["--part-out", prefix[:-1], "-C", "-i", str(bam)], scratch, 0), "ending in '/'"
    )

    # a configured real alignstats is set aside for the fan-out forms (only the built-in engine splits)
    res = _child(
        ["--part-out", f"{tmp_path}/parts/d2/", "-C", "-i", str(bam)],
        scratch,
        2,
        ALIGNBATCH_ALIGNSTATS_BIN="/bin/false",
    )
    assert res.code == 0, res.stderr
    assert res.events("shard.builtin_engine")[0]["configured"] == "/bin/false"
    assert (tmp_path / "parts" / "d2" / f"part-2-of-{N}.json").exists()

    # no index next to a local BAM: the engine's own refusal, one line, exit 64
    lone = tmp_path / "lone.bam"
    shutil.copy(refdata / "a_wgs.bam", lone)
    res = _child(["--part-out", f"{tmp_path}/parts/d3/", "-C", "-i", str(lone)], scratch, 0)
    assert res.code == 64, res.stderr
    [line] = [e["line"] for e in res.events("tool_stderr")]
    assert "cannot shard: no .bai/.csi index next to the BAM" in line


def test_an_empty_shard_fetches_the_header_and_the_eof_block_only(s3, scratch: Path, refdata: Path) -> None:  # type: ignore[no-untyped-def]
    version = _put_bam(s3, refdata)
    # 4 contigs with records and '*' over 8 shards: the last ones are empty (the planner need not start
    # them, but a child that runs must still write its part for the merge)
    uri = f"s3://inbox/{KEY}?versionId={version}"
    shard = ["--shard-of", "8", "--shard-index", "7", "--part-out", PREFIX, "-C", "-i", uri]
    res = run_worker(["--", "alignstats", *shard], scratch)
    assert res.code == 0, res.stderr
    [staged] = res.events("shard.staged")
    assert staged["contigs"] == [] and not staged["unplaced"]
    assert staged["bytes_fetched"] < 200_000 and staged["ranges"][-1][1] == staged["object_size"]
    part = json.loads(s3.get_object(Bucket="res", Key="parts/a_wgs/0123abcd/part-7-of-8.json")["Body"].read())
    assert part["pieces"] == [] and part["report_input"]["name"] == f"s3://inbox/{KEY}"
