"""Every golden alignstats v0.11 command, run through the built-in engine, compared byte for byte.

Commands come from golden/COMMANDS.txt (cwd = the data directory). Small cases run from tests/data; the
large ones (a_wgs, b_wgs, c, d, f) need ../shared/refdata and skip without it. Report files are compared
byte for byte; stderr and exit codes too. Runs in-process where possible (one numba load for the whole
module); the stdin/stdout cases and C-level HTSlib messages need a real subprocess.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.exitcodes import ExitCode
from worker.engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "golden"
ENGINE = [sys.executable, "-c", "import sys; from worker.engine.cli import main; sys.exit(main())"]

# Damaged inputs where alignbatch deliberately differs (exit 65 and one clear line, no report).
DELIBERATE = {"h_truncated__C", "h_no_eof__C", "h_corrupt_middle__C", "cli_bed_end0"}
# Cases that need the process boundary: stdin, report on stdout, HTSlib's own stderr lines.
SUBPROCESS = {"a_wgs__C_stdin", "cli_no_output", "h_missing__C", "h_truncated__C_r", "h_not_bam__C"}
SMALL_FILES = {p.name for p in (ROOT / "tests" / "data").iterdir()}


@dataclass(frozen=True)
class GoldenCase:
    name: str
    args: list[str]
    exit_code: int
    stdin: str | None
    stdout: bool
    files: list[str]

    @property
    def small(self) -> bool:
        return all(f in SMALL_FILES for f in self.files)


def load_cases() -> list[GoldenCase]:
    cases = []
    for line in (GOLDEN / "COMMANDS.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, rest = line.split(":", 1)
        cmd, code = rest.rsplit("# exit", 1)
        tokens = shlex.split(cmd)
        args: list[str] = []
        stdin = None
        stdout = False
        it = iter(tokens[1:])
        for tok in it:
            if tok == "2>":
                next(it)
            elif tok == "<":
                stdin = next(it)
            elif tok == ">":
                next(it)
                stdout = True
            else:
                args.append(tok)
        files = [a for i, a in enumerate(args) if i > 0 and args[i - 1] in ("-i", "-t", "-m", "-r", "-T")]
        if stdin:
            files.append(stdin)
        cases.append(GoldenCase(name, args, int(code), stdin, stdout, files))
    return cases


CASES = [c for c in load_cases() if not c.name.startswith("e_large")]


def _workdir(case: GoldenCase, request: pytest.FixtureRequest) -> Path:
    if case.small:
        return request.getfixturevalue("data_dir")
    return request.getfixturevalue("refdata")


def _rewrite(args: list[str], out: Path) -> list[str]:
    return [str(out) if a.startswith("golden/") else a for a in args]


def _expected_stderr(case: GoldenCase, out: Path) -> str:
    path = GOLDEN / f"{case.name}.stderr.txt"
    text = path.read_text() if path.exists() else ""
    return text.replace(f"golden/{case.name}.json", str(out))


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.name) for c in CASES if c.name not in DELIBERATE and c.exit_code != 139],
)
def test_golden(
    case: GoldenCase, request: pytest.FixtureRequest, tmp_path: Path, capsys, monkeypatch
) -> None:
    workdir = _workdir(case, request)
    out = tmp_path / f"{case.name}.json"
    args = _rewrite(case.args, out)
    golden_json = GOLDEN / f"{case.name}.json"
    if case.name in SUBPROCESS:
        proc = subprocess.run(
            ENGINE + args,
            cwd=workdir,
            stdin=open(workdir / case.stdin, "rb") if case.stdin else subprocess.DEVNULL,  # noqa: SIM115
            capture_output=True,
            timeout=300,
        )
        assert proc.returncode == case.exit_code, proc.stderr.decode()
        assert proc.stderr.decode() == _expected_stderr(case, out)
        produced = proc.stdout if case.stdout else (out.read_bytes() if out.exists() else b"")
    else:
        monkeypatch.chdir(workdir)
        code = main(args)
        captured = capsys.readouterr()
        assert code == case.exit_code, captured.err
        assert captured.err == _expected_stderr(case, out)
        produced = out.read_bytes() if out.exists() else b""
    if golden_json.exists():
        assert produced == golden_json.read_bytes()
    else:
        assert produced == b""


@pytest.mark.parametrize("name", sorted(DELIBERATE))
def test_deliberate_differences(
    name: str, request: pytest.FixtureRequest, tmp_path: Path, capsys, monkeypatch
) -> None:
    """Damaged BAMs and a crashing BED line: one clear line naming the file, exit 65, no report left."""
    case = next(c for c in load_cases() if c.name == name)
    monkeypatch.chdir(_workdir(case, request))
    out = tmp_path / "report.json"
    assert main(_rewrite(case.args, out)) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    ours = [line for line in err.splitlines() if line.startswith("[alignbatch-alignstats ERROR]")]
    assert len(ours) == 1, err
    bad_file = next(f for f in case.files if f.startswith(("h_", "targets_end0")))
    assert bad_file in ours[0]
    assert not out.exists()


def test_targets_leading_whitespace_end0_is_refused(
    data_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """A BED line whose leading whitespace makes the end parse as 0 (alignstats: SIGSEGV)."""
    bed = tmp_path / "ws.bed"
    bed.write_text("  ctgA\t100\t200\n")
    out = tmp_path / "r.json"
    monkeypatch.chdir(data_dir)
    assert main(["-t", str(bed), "-i", "i_edge.sam", "-o", str(out)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert str(bed) in err
    assert "line 1" in err
    assert not out.exists()


@pytest.mark.timeout(120)
def test_p_never_hangs(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "p.json"
    monkeypatch.chdir(data_dir)
    for _ in range(5):
        assert main(["-C", "-p", "-P", "4", "-i", "i_edge.bam", "-o", str(out)]) == 0
        assert out.read_bytes() == (GOLDEN / "i_edge_bam__C.json").read_bytes()


def test_sam_on_stdin_without_format(data_dir: Path) -> None:
    """No -j on stdin: HTSlib-style content detection (SAM text here)."""
    with open(data_dir / "i_edge.sam", "rb") as fh:
        proc = subprocess.run([*ENGINE, "-C"], cwd=data_dir, stdin=fh, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = (GOLDEN / "i_edge__C.json").read_bytes()
    expected = expected.replace(b'"InputFileName": "i_edge.sam"', b'"InputFileName": "-"')
    expected = expected.replace(
        b'"InputFileSize": %d' % os.path.getsize(data_dir / "i_edge.sam"), b'"InputFileSize": 0'
    )
    assert proc.stdout == expected


def test_cram_on_stdin_with_reference(refdata: Path) -> None:
    """CRAM on stdin (spooled for HTSlib): same numbers as the CRAM file run, no index noise."""
    with open(refdata / "b_wgs.cram", "rb") as fh:
        proc = subprocess.run(
            [*ENGINE, "-C", "-T", "ref.fa"], cwd=refdata, stdin=fh, capture_output=True, timeout=300
        )
    assert proc.returncode == 0
    assert proc.stderr.decode() == "[AlignStats WARNING] No output file specified, using stdout for report.\n"
    expected = (GOLDEN / "b_wgs__C_T.json").read_bytes()
    size = (refdata / "b_wgs.cram").stat().st_size
    expected = expected.replace(b'"InputFileName": "b_wgs.cram"', b'"InputFileName": "-"')
    expected = expected.replace(b'"InputFileSize": %d' % size, b'"InputFileSize": 0')
    assert proc.stdout == expected


def test_module_entry_point(data_dir: Path, tmp_path: Path) -> None:
    """`python -m worker.engine.cli` (what the worker runs from a checkout) behaves like the script."""
    out = tmp_path / "m.json"
    proc = subprocess.run(
        [sys.executable, "-m", "worker.engine.cli", "-C", "-i", "i_edge.sam", "-o", str(out)],
        cwd=data_dir,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == (GOLDEN / "i_edge__C.json").read_bytes()


def test_tsv_format_has_the_same_values(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(data_dir)
    out = tmp_path / "r.tsv"
    assert main(["--format", "tsv", "-t", "i_edge_targets.bed", "-i", "i_edge.sam", "-o", str(out)]) == 0
    import json

    golden = json.loads((GOLDEN / "i_edge__t.json").read_text())
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert [k for k, _ in rows] == list(golden)
    assert rows[0][1] == "i_edge.sam"
    assert {k: v for k, v in rows[1:]} == {
        k: (f"{v:.6f}" if isinstance(v, float) else str(v)) for k, v in list(golden.items())[1:]
    }


def test_format_follows_content_not_name(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """As with HTSlib, a SAM file named .bam is read as SAM (only unparsable content is an error)."""
    renamed = tmp_path / "really_sam.bam"
    renamed.write_bytes((data_dir / "i_edge.sam").read_bytes())
    out = tmp_path / "r.json"
    monkeypatch.chdir(tmp_path)
    assert main(["-C", "-i", renamed.name, "-o", str(out)]) == 0
    expected = (GOLDEN / "i_edge__C.json").read_text().replace('"i_edge.sam"', '"really_sam.bam"')
    assert out.read_text() == expected


@pytest.mark.slow
@pytest.mark.parametrize("name", ["e_large__C", "e_large__t"])
def test_golden_case_e(name: str, refdata: Path, tmp_path: Path) -> None:
    """Case e (4M records) is not stored; point ALIGNBATCH_LARGE_DIR at a `make_data.sh DIR --large-only`."""
    large = Path(os.environ.get("ALIGNBATCH_LARGE_DIR", "/work/large"))
    if not (large / "e_large.bam").exists():
        pytest.skip(f"{large}/e_large.bam not present")
    case = next(c for c in load_cases() if c.name == name)
    out = tmp_path / "e.json"
    proc = subprocess.run([*ENGINE, *_rewrite(case.args, out)], cwd=large, capture_output=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    # InputFileSize depends on the local samtools/zlib build (COMMANDS.txt); the records do not
    expected = (GOLDEN / f"{name}.json").read_text().splitlines()
    produced = out.read_text().splitlines()
    assert produced[3:] == expected[3:]
    assert produced[:2] == expected[:2]
