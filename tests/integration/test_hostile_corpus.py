"""The bad-input corpus (tests/corpus) against every entry point: the controller's intake on SQS (moto)
and in local mode, and local mode end to end through the worker, the engine and the summary tool.

Every entry ends as its corpus outcome says: processed as given (its own report, nothing else's), a
recorded rejection, a failed run whose job said what is wrong in one line, a message left for the DLQ, or
a file skipped with a logged reason. Never a traceback, a stalled batch, or another object's report.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import pytest

from controller.config import load_config, local_config
from controller.daemon import build_controller
from controller.ledger import Ledger
from controller.metrics import Metrics
from controller.service import Controller
from tests.corpus import BED_PREFIXES, DATA, FILES, GARBAGE_BED, KEYS, KeyCase, data
from tests.support.aws_env import AwsEnv, create_aws_env, drain_notifications
from tests.support.fakes import inbox_event

BIN = Path(sys.executable).parent
GOLDEN = json.loads((DATA / "golden" / "i_edge_bam__C.json").read_text())
# Options a worker command line has: a key may only ever be the value of one of them.
VALUE_OPTIONS = {"-i", "-o", "-t", "-T", "--index", "--report", "--output", "--meta", "--input"}


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def _key_is_only_an_option_value(command: list[str] | tuple[str, ...], key: str) -> None:
    """Every argument carrying the key follows an option that takes a value, and is not an option."""
    for i, arg in enumerate(command):
        if key in arg:
            assert i > 0 and command[i - 1] in VALUE_OPTIONS, (key, command)
            assert not arg.startswith("-"), (key, arg)


def _one_line_error(log: str) -> str:
    """The one line a failed job's log ends with: the worker's own error, or the tool's only stderr line."""
    events = [json.loads(line) for line in log.strip().splitlines()]
    last = events[-1]
    if last["event"] == "worker_failed":  # the worker refused the job before running the tool
        error = str(last["error"])
    else:  # the tool ran and failed: the worker's summary, and the tool's stderr in one line
        assert last["event"] == "worker_summary" and last["outcome"] == "tool_failed", last
        [run] = [e for e in events if e["event"] == "tool_run"]
        [error] = run["stderr_tail"]
    assert error.strip() and "\n" not in error, error
    return error


# -- local mode, end to end -----------------------------------------------------------------------------
def test_corpus_in_local_mode_end_to_end(tmp_path: Path) -> None:
    inbox, corpus, outside = tmp_path / "inbox", tmp_path / "corpus", tmp_path / "outside"
    good, good_index = data("i_edge.bam"), data("i_edge.bam.bai")
    local_keys = [c for c in KEYS if c.local]
    for case in local_keys:
        _write(inbox / case.key, good)
        _write(inbox / (case.key + ".bai"), good_index)  # no index step: two jobs a run, not three
    for fcase in FILES:
        _write(inbox / fcase.key, data(fcase.content))
        if fcase.index is not None:
            _write(inbox / (fcase.key + ".bai"), data(fcase.index))
    _write(corpus / "garbage.bed", GARBAGE_BED)
    _write(outside / "other.bam", data("h_source.bam"))
    (inbox / "link-out.bam").symlink_to(outside / "other.bam")
    (inbox / "passwd.bam").symlink_to("/etc/passwd")
    _write(Path(os.fsdecode(bytes(inbox) + b"/not-utf8-\xff.bam")), good)
    past = time.time() - 10
    for p in [*inbox.rglob("*"), inbox / "link-out.bam", inbox / "passwd.bam"]:
        os.utime(p, (past, past), follow_symlinks=False)
    cfg = tmp_path / "corpus.toml"
    cfg.write_text(
        "".join(
            f'[[pipeline.prefix]]\nprefix = "{prefix}"\nalignstats_args = []\n'
            f'target_bed = "{bed.format(corpus=corpus)}"\n'
            for prefix, bed in BED_PREFIXES.items()
        )
    )
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    env.pop("ALIGNBATCH_ALIGNSTATS_BIN", None)
    out = subprocess.run(
        [str(BIN / "alignbatch-controller"), "run", "--local", str(tmp_path), "--config", str(cfg), "--once",
         "--metrics-port", "0", "--slots", "2", "--max-seconds", "80"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Traceback" not in out.stdout + out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]

    ledger = Ledger(tmp_path / "state.db")
    runs = {r.key: r for r in ledger.runs()}
    assert len(runs) == len(local_keys) + len(FILES), sorted(runs)  # skipped files made no run
    for case in local_keys:
        run = runs[case.key]
        assert run.state == case.outcome, (case, run.reason)
        report = tmp_path / "results" / "reports" / f"{case.key}.alignstats.json"
        if case.outcome == "rejected":
            assert case.reason in (run.reason or ""), (case, run.reason)
            assert ledger.jobs_for_run(run.run_id) == [] and not report.exists()
            continue
        got = json.loads(report.read_text())
        assert got["InputFileName"] == str(inbox / case.key) and got["TotalRecords"] == GOLDEN["TotalRecords"]
        for job in ledger.jobs_for_run(run.run_id):
            _key_is_only_an_option_value(job.job_spec.command, case.key)

    for fcase in FILES:
        run = runs[fcase.key]
        assert run.state == "failed", (fcase, run.state)
        assert not (tmp_path / "results" / "reports" / f"{fcase.key}.alignstats.json").exists()
        [failed] = [j for j in ledger.jobs_for_run(run.run_id) if j.exit_code not in (None, 0)]
        assert failed.exit_code in fcase.exit_codes, (fcase, failed.step, failed.exit_code, failed.reason)
        log = Path(failed.log_stream or "").read_text()
        assert "Traceback" not in log, (fcase, log[-1500:])
        assert _one_line_error(log), (fcase, log[-1500:])

    # NFC and NFD spellings: two keys, two reports, two rows.
    nfc, nfd = (c.key for c in KEYS if c.key.startswith("caf"))
    assert nfc != nfd and runs[nfc].run_id != runs[nfd].run_id
    assert runs[nfc].report_uri != runs[nfd].report_uri

    tables = tmp_path / "results" / "table"
    table = list(csv.DictReader(io.StringIO((tables / "results.csv").read_text())))
    samples = {r["inbox_key"]: r["sample"] for r in table}
    assert samples["'=cmd|' -C calc'!A0.bam"] == "'=cmd|' -C calc'!A0"
    assert samples["'@SUM(1+1).bam"] == "'@SUM(1+1)"
    assert "-i.bam" not in samples and samples["'-i.bam"] == "'-i"
    jsonl = [json.loads(x) for x in (tables / "results.jsonl").read_text().splitlines()]
    assert {r["inbox_key"] for r in jsonl} == {c.key for c in local_keys if c.outcome == "succeeded"}

    skipped = {e["file"] for e in events if e["event"] == "inbox.skipped"}
    assert {"link-out.bam", "passwd.bam", ascii("not-utf8-\udcff.bam")} <= skipped, skipped


# -- intake, local mode: every key, also those no file system can hold ---------------------------------
@pytest.fixture()
def ctl(tmp_path: Path) -> Iterator[Controller]:
    """A local-profile controller with the real local executor (nothing runs unless submitted)."""
    (tmp_path / "inbox").mkdir()
    c = build_controller(local_config(tmp_path), metrics=Metrics(), with_source=False, slots=1)
    yield c
    c.executor.close(wait=False)


@pytest.mark.parametrize("case", KEYS, ids=lambda c: ascii(c.key)[:40])
def test_corpus_keys_at_local_intake(ctl, case: KeyCase) -> None:
    outcome = ctl.handle_event(inbox_event(ctl, case.key))
    [run] = ctl.ledger.runs()
    if case.outcome == "rejected":
        assert outcome == "ignored" and run.state == "rejected" and case.reason in (run.reason or "")
    else:
        assert outcome == "accepted" and run.state == "active" and run.key == case.key
        for job in ctl.ledger.jobs_for_run(run.run_id):
            _key_is_only_an_option_value(job.job_spec.command, case.key)


# -- intake on SQS (moto): every key in mixed batches --------------------------------------------------
def _record(env: AwsEnv, key: str, n: int) -> str:
    return json.dumps({"Records": [{
        "eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "eventTime": "2026-12-01T10:00:00Z",
        "s3": {"bucket": {"name": env.inbox_bucket},
               "object": {"key": quote_plus(f"incoming/{key}", safe="/"), "size": 10, "eTag": f"e{n}"}},
    }]})  # fmt: skip


def test_corpus_keys_on_sqs(aws: str, tmp_path: Path) -> None:
    env = create_aws_env(aws)
    drain_notifications(env, 1)  # the TestEvent
    sqs = env.client("sqs")
    bodies = [_record(env, c.key, n) for n, c in enumerate(KEYS)]
    # A key that is not UTF-8 (a lone surrogate): no S3 object, so a malformed message, in the middle.
    bodies.insert(len(bodies) // 2, json.dumps({
        "source": "aws.s3", "detail-type": "Object Created",
        "detail": {"bucket": {"name": env.inbox_bucket}, "object": {"key": "incoming/\ud800.bam", "size": 1}},
    }))  # fmt: skip
    for body in bodies:
        sqs.send_message(QueueUrl=env.queue_url, MessageBody=body)
    cfg_path = tmp_path / "controller.toml"
    cfg_path.write_text(env.config_toml(tmp_path / "state.db"))
    ctl = build_controller(load_config(cfg_path), metrics=Metrics(), once=True)
    acked = left = 0
    for _ in range(10):
        result = ctl.poll()  # never raises: one message's problem is that message's alone
        acked, left = acked + result.acked, left + result.left
        if not result.received:
            break
    assert (acked, left) == (len(KEYS) + 1, 1)  # every message but the malformed one (+ the TestEvent)
    runs = {r.key: r for r in ctl.ledger.runs()}
    assert len(runs) == len(KEYS)
    for case in KEYS:
        run = runs[f"incoming/{case.key}"]
        if case.outcome == "rejected":
            assert run.state == "rejected" and case.reason in (run.reason or ""), (case, run.reason)
            continue
        assert run.state == "active" and run.input_uri.startswith(
            f"s3://{env.inbox_bucket}/incoming/{case.key}?etag="
        )  # pinned (#14)
        assert run.report_uri == f"s3://{env.results_bucket}/alignbatch/reports/{case.key}.alignstats.json"
        for job in ctl.ledger.jobs_for_run(run.run_id):
            _key_is_only_an_option_value(job.job_spec.command, case.key)
    reports = [r.report_uri for r in runs.values() if r.state == "active"]
    assert len(set(reports)) == len(reports)  # NFC/NFD and every other pair: no two runs share a report
    attrs = sqs.get_queue_attributes(
        QueueUrl=env.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    counts = (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"])
    assert counts == ("0", "1")  # the malformed one is in flight, left for the redrive to the DLQ
