"""Several cores for one input (ALIGNBATCH_ENGINE_CPUS) give the serial run's report, byte for byte.

Every in-process golden command runs again with 3 cores: indexed BAMs take the contig-parallel path,
everything else (SAM, CRAM, -r, no index, damaged files) must still be the serial run. Reports, stderr and
exit codes are compared with the golden files, as test_engine_golden does for the serial run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_engine_golden import (
    CASES,
    DELIBERATE,
    GOLDEN,
    SUBPROCESS,
    _expected_stderr,
    _rewrite,
    _workdir,
)
from worker.engine import budget, parallel
from worker.engine.cli import main, parse_args
from worker.engine.errors import BadInputError
from worker.engine.run import open_input

PARALLEL_CASES = [
    c for c in CASES if c.name not in DELIBERATE | SUBPROCESS and c.exit_code not in (139,) and c.files
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in PARALLEL_CASES])
def test_parallel_matches_golden(case, request, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv(budget.CPUS_ENV, "3")
    monkeypatch.chdir(_workdir(case, request))
    out = tmp_path / f"{case.name}.json"
    code = main(_rewrite(case.args, out))
    captured = capsys.readouterr()
    assert code == case.exit_code, captured.err
    assert captured.err == _expected_stderr(case, out)
    golden = GOLDEN / f"{case.name}.json"
    assert (out.read_bytes() if out.exists() else b"") == (golden.read_bytes() if golden.exists() else b"")


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_refdata_capture_parallel_takes_the_index_path(refdata: Path, tmp_path, monkeypatch, pool) -> None:
    """d_capture with targets: 5 pieces on 2 workers (threads or processes), the golden bytes."""
    monkeypatch.setenv(budget.CPUS_ENV, "2")
    monkeypatch.setenv(parallel.POOL_ENV, pool)
    monkeypatch.chdir(refdata)
    inp = open_input(parse_args(["-i", "d_capture.bam"]))
    try:
        pieces, why = parallel.plan_pieces(inp)
    finally:
        inp.close()
    assert pieces is not None, why
    assert [p.tid for p in pieces] == [0, 1, 2, 3, None]
    out = tmp_path / "r.json"
    assert main(["-t", "targets.bed", "-i", "d_capture.bam", "-o", str(out)]) == 0
    assert out.read_bytes() == (GOLDEN / "d_capture__t.json").read_bytes()


def test_no_index_falls_back_to_serial(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    bam = tmp_path / "i_edge.bam"
    shutil.copy(data_dir / "i_edge.bam", bam)
    monkeypatch.chdir(tmp_path)
    inp = open_input(parse_args(["-i", bam.name]))
    try:
        pieces, why = parallel.plan_pieces(inp)
    finally:
        inp.close()
    assert pieces is None
    assert "index" in why


def test_stale_index_is_refused(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """An index whose counts do not match the file: exit 65 naming the file, not a wrong report."""
    import dataclasses

    monkeypatch.chdir(data_dir)
    inp = open_input(parse_args(["-i", "i_edge.bam"]))
    try:
        pieces, _ = parallel.plan_pieces(inp)
        assert pieces is not None
        wrong = dataclasses.replace(pieces[0], records=(pieces[0].records or 0) + 1)
        from worker.engine.run import engine_config

        with pytest.raises(BadInputError, match="index promises"):
            parallel.run_piece(
                engine_config(parse_args(["-C"]), None, None), inp.header, "i_edge.bam", wrong, 1
            )
    finally:
        inp.close()


def test_engine_cpus_parsing() -> None:
    assert budget.engine_cpus({}) == 1
    assert budget.engine_cpus({budget.CPUS_ENV: "4"}) == 4
    assert budget.engine_cpus({budget.CPUS_ENV: "0"}) == 1
    assert budget.engine_cpus({budget.CPUS_ENV: "many"}) == 1


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_errors_in_a_piece_arrive_as_themselves_from_either_pool(
    data_dir: Path, tmp_path: Path, monkeypatch, pool: str
) -> None:
    """A stale index seen in a pool worker is the same BadInputError (exit 65) in the parent: a process
    pool pickles it back, and an error that could not be rebuilt made the pool report itself broken."""
    import dataclasses

    from worker.engine.run import engine_config

    monkeypatch.chdir(data_dir)
    monkeypatch.setenv(parallel.POOL_ENV, pool)
    inp = open_input(parse_args(["-i", "i_edge.bam"]))
    try:
        pieces, _ = parallel.plan_pieces(inp)
        assert pieces is not None
        wrong = [dataclasses.replace(p, records=(p.records or 0) + 1) for p in pieces]
        config = engine_config(parse_args(["-C"]), None, None)
        with pytest.raises(BadInputError, match="index promises") as caught:
            parallel.run_pieces(config, inp.header, "i_edge.bam", wrong, cpus=2)
        assert caught.value.exit_code == 65 and caught.value.path == "i_edge.bam"
    finally:
        inp.close()


@pytest.mark.parametrize("cpus", ["1", "2"])
def test_a_damaged_indexed_bam_is_exit_65_on_any_number_of_cores(
    data_dir: Path, tmp_path: Path, cpus: str
) -> None:
    """Through the command line, as the worker runs it (with compiled kernels the pool is processes)."""
    bam = tmp_path / "damaged.bam"
    shutil.copy(data_dir / "h_corrupt_middle.bam", bam)
    shutil.copy(data_dir / "h_source.bam.bai", tmp_path / "damaged.bam.bai")
    proc = subprocess.run(
        [sys.executable, "-m", "worker.engine.cli", "-C", "-i", str(bam), "-o", str(tmp_path / "r.json")],
        env={**os.environ, budget.CPUS_ENV: cpus},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 65, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"[alignbatch-alignstats ERROR] {bam}: corrupt BAM block")
    assert not (tmp_path / "r.json").exists()


def test_a_killed_pool_worker_is_exit_137_not_an_internal_error(data_dir: Path, monkeypatch) -> None:
    """The system killing a pool worker (the OOM killer, say) ends the run as a killed process would."""
    from worker.engine.errors import WorkerLostError
    from worker.engine.run import engine_config

    monkeypatch.chdir(data_dir)
    monkeypatch.setenv(parallel.POOL_ENV, "processes")
    inp = open_input(parse_args(["-i", "i_edge.bam"]))
    try:
        pieces, _ = parallel.plan_pieces(inp)
        assert pieces is not None
        config = engine_config(parse_args(["-C"]), None, None)
        with pytest.raises(WorkerLostError) as caught:
            parallel.run_pieces(config, inp.header, "i_edge.bam", pieces, cpus=2, runner=_killed)
        assert caught.value.exit_code == 137
    finally:
        inp.close()


def _killed(*_args: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_stated_budget_caps_the_inflate_threads(data_dir: Path, monkeypatch) -> None:
    """ALIGNBATCH_ENGINE_CPUS=1 (a 1-vCPU job) inflates in line: no bgzf-inflate helper threads, which
    only cost CPU there; unset, the CPUs the process may run on decide (up to 4)."""
    import threading

    from worker.engine.source import InputFile

    assert budget.stated_cpus({}) is None and budget.stated_cpus({budget.CPUS_ENV: "0"}) is None
    assert budget.stated_cpus({budget.CPUS_ENV: "2"}) == 2

    def inflaters() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("bgzf-inflate")}

    def helpers_while_reading() -> int:
        before = inflaters()  # another test's reader may still be winding down
        inp = InputFile(str(data_dir / "h_source.bam"), "bam", None)
        try:
            next(iter(inp.chunks()))
            return len(inflaters() - before)
        finally:
            inp.close()

    monkeypatch.setenv(budget.CPUS_ENV, "1")
    assert helpers_while_reading() == 0
    if len(os.sched_getaffinity(0)) > 1:
        monkeypatch.setenv(budget.CPUS_ENV, "2")
        assert helpers_while_reading() >= 1
