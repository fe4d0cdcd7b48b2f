"""What a person sees: `run --local DIR --demo --once` under a pseudo-terminal (the progress display,
then the per-sample QC table and the report's path, no JSON log lines on the screen, the log in a file);
MultiQC over the demo's results; `check` refusing a thresholds file with a typo."""

from __future__ import annotations

import csv
import json
import os
import pty
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

from core.qc import shipped_thresholds_path

BIN = Path(sys.executable).parent
CONTROLLER = str(BIN / "alignbatch-controller")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env.pop("ALIGNBATCH_ALIGNSTATS_BIN", None)
    env.update(TERM="xterm-256color", COLUMNS="100", LINES="40")
    return env


def run_on_a_terminal(args: list[str], cwd: Path, timeout: float = 240) -> tuple[int, str]:
    """Run with stdin/stdout/stderr on a pty, as a person's shell would; returns (exit code, screen text
    without escape sequences)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        args, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=_env(), close_fds=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
        if time.monotonic() > deadline:
            proc.kill()
            break
    os.close(master)
    code = proc.wait(timeout=30)
    return code, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    base = tmp_path_factory.mktemp("demo")
    local = base / "alignbatch-local"
    code, screen = run_on_a_terminal([CONTROLLER, "run", "--local", str(local), "--demo", "--once"], base)
    return local, code, screen


def test_the_demo_on_a_terminal_shows_progress_then_the_qc_table(demo: tuple[Path, int, str]) -> None:
    local, code, screen = demo
    assert code == 0, screen[-3000:]
    # progress while it worked
    assert "files found 2" in screen and "jobs:" in screen
    # then one table: sample, verdict, the four metrics
    tail = screen[screen.rindex("QC by sample") :]
    for header in ("sample", "verdict", "mapped %", "duplicate %", "mean coverage", "median insert"):
        assert header in tail, tail
    lines = {ln.split("│")[1].strip(): ln for ln in tail.splitlines() if ln.startswith("│")}
    assert set(lines) == {"h_source", "i_edge"}
    # the demo BAMs are tiny (under 3X): the wgs defaults fail them on depth, and say so
    assert all(" fail " in ln for ln in lines.values())
    assert "99.56" in lines["h_source"] and "230" in lines["h_source"]
    assert "runs: 2 succeeded, 0 failed" in tail
    report = local.resolve() / "results" / "report" / "latest.html"
    assert f"report: {report}" in tail and report.is_file()
    assert "h_source" in report.read_text()
    # no log lines on the screen; they are in the log file, as JSON
    assert '"event"' not in screen and "run.succeeded" not in screen
    log = local / "logs" / "controller.jsonl"
    assert f"log:    {log.resolve()}" in tail
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert "run.succeeded" in events and events.count("qc.verdict") == 2 and "qc.report_written" in events


def test_the_results_table_carries_the_verdicts(demo: tuple[Path, int, str]) -> None:
    local, _, _ = demo
    with (local / "results" / "table" / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["qc_verdict"] for r in rows} == {"fail"} and {r["qc_assay"] for r in rows} == {"wgs"}
    failed = json.loads(rows[0]["qc_failed_rules"])
    assert {"metric", "value", "threshold", "level", "direction"} == set(failed[0])
    assert all(len(r["qc_rules_sha256"]) == 64 for r in rows)


def test_verbose_shows_the_log_lines_as_before(tmp_path: Path) -> None:
    code, screen = run_on_a_terminal(
        [CONTROLLER, "run", "--local", str(tmp_path / "v"), "--demo", "--once", "--verbose"], tmp_path
    )
    assert code == 0, screen[-3000:]
    assert "run.succeeded" in screen and "qc.verdict" in screen
    assert "files found" not in screen and "alignbatch: inbox drained." in screen


@pytest.mark.skipif(
    not metadata.entry_points(group="multiqc.modules.v1", name="alignbatch")
    or shutil.which("multiqc", path=str(BIN)) is None,
    reason="multiqc or the alignbatch plugin entry point is not installed (pip install -e '.[multiqc]')",
)
def test_multiqc_on_the_demo_results_shows_the_alignstats_section(
    demo: tuple[Path, int, str], tmp_path: Path
) -> None:
    local, _, _ = demo
    out = tmp_path / "mqc"
    proc = subprocess.run(
        [str(BIN / "multiqc"), str(local / "results"), "-o", str(out), "--no-ansi", "--no-version-check"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = out / "multiqc_data"
    with (data / "multiqc_general_stats.txt").open(newline="") as fh:
        stats = {r["Sample"]: r for r in csv.DictReader(fh, delimiter="\t")}
    assert set(stats) == {"h_source", "i_edge"}
    assert float(stats["h_source"]["alignbatch-MappedReadsPct"]) == pytest.approx(99.56, abs=0.01)
    assert stats["h_source"]["alignbatch-qc_verdict"] == "fail"  # from the controller's table
    assert (data / "multiqc_alignbatch.txt").is_file()
    assert "alignbatch" in (out / "multiqc_report.html").read_text()


def test_check_refuses_a_thresholds_file_with_a_typo(tmp_path: Path) -> None:
    text = shipped_thresholds_path().read_text()
    bad = tmp_path / "thresholds.toml"
    bad.write_text(text.replace('"DuplicateReadsPct"', '"DuplicateReadPct"', 1))
    line = next(i for i, ln in enumerate(bad.read_text().splitlines(), 1) if '"DuplicateReadPct"' in ln)
    out = subprocess.run(
        [CONTROLLER, "check", "--thresholds", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 78
    [message] = out.stderr.splitlines()
    assert message == (
        f"alignbatch-controller: {bad}:{line}: unknown metric 'DuplicateReadPct'; "
        "did you mean 'DuplicateReadsPct'?"
    )
    good = subprocess.run([CONTROLLER, "check", "--thresholds", str(shipped_thresholds_path())],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert good.returncode == 0 and good.stdout.startswith("ok       thresholds ")
    # The same file named by a config's [qc] thresholds (relative to the config) stops `run` before it
    # starts anything.
    cfg = tmp_path / "controller.toml"
    cfg.write_text('[qc]\nthresholds = "thresholds.toml"\n')
    run = subprocess.run(
        [CONTROLLER, "run", "--config", str(cfg), "--local", str(tmp_path / "l"), "--once"],
        capture_output=True, text=True, timeout=60, env=_env(),
    )  # fmt: skip
    assert run.returncode == 78 and f"{bad}:{line}: unknown metric" in run.stderr
    assert not (tmp_path / "l" / "state.db").exists()
