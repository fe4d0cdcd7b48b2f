"""The engine fuzzed against the real alignstats v0.11: same report bytes, same exit code, same messages.

hypothesis draws small coordinate-sorted inputs (SAM, bgzipped SAM, BAM, CRAM; random flags, CIGARs with
M/I/D/N/S/H/=/X, mates and MC tags, NM, Ns, several contigs) and random target/mask/region BEDs and
option sets (tests/support/alignments.py); both tools run on the same files in the same directory.
Compared: exit code, the report bytes, and alignstats' own `[AlignStats ...]` stderr lines (HTSlib's
lines come from two HTSlib versions and are not compared).

CI: a fixed seed, at most 400 examples and a time budget (ALIGNBATCH_ORACLE_SECONDS, default 60 s; later
examples are skipped; shrinking a failure gets ALIGNBATCH_ORACLE_SHRINK_SECONDS, default 60 s, more).
ALIGNBATCH_SLOW=1 (marker `slow`) adds a run with a random seed (ALIGNBATCH_ORACLE_SEED to replay one),
up to ALIGNBATCH_ORACLE_EXAMPLES (5000) examples in ALIGNBATCH_ORACLE_SECONDS (900 s), drawn in chunks
of SLOW_CHUNK examples (seeds seed, seed + 1, ...) so that it ends with its budget. Each run writes
what it covered (seed, option sets, features, skips) to <ALIGNBATCH_ORACLE_STATS>/<ci|slow>-coverage.txt.
A failure prints the argv and the diff and saves the shrunk reproducer (input files, cmd.sh, both reports,
diff.txt) under ALIGNBATCH_ORACLE_FAILURES (default .oracle-failures/ in the checkout), one directory
per kind of difference.

Left out of the comparison, on purpose (each documented in docs/engine.md):
- -p runs the real tool does not finish within its timeout (its reader/processor race, ALIGNSTATS.md
  Q13), and with -p the order of the racy INFO lines; -P 2+ on SAM (plain or bgzipped) is never drawn,
  the real tool hangs there;
- inputs whose numbers are undefined in the real tool: qualities read past a record's data
  (alignments.quality_reads_past_record), a crash after its write one past the coverage array
  (alignments.real_tool_overflows), the +1 CapHighCoverageNonTargetHits it reads from past that array
  (+1 per finish of the longest contig: it is finished again when its records resume after unplaced
  ones, alignments.longest_contig_finishes);
- BED lines the engine refuses because they crash the real tool (exit 65 "(alignstats would crash)").
"""

from __future__ import annotations

import collections
import difflib
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, note, seed, settings

from tests.support import alignments
from tests.support.oracle import ROOT, Oracle, OracleUnavailable, Outcome, find_or_build, run_engine

SLOW = os.environ.get("ALIGNBATCH_SLOW") == "1"
BUDGET = float(os.environ.get("ALIGNBATCH_ORACLE_SECONDS", "900" if SLOW else "60"))
FAILURES = Path(os.environ.get("ALIGNBATCH_ORACLE_FAILURES", str(ROOT / ".oracle-failures")))
SHRINK = float(os.environ.get("ALIGNBATCH_ORACLE_SHRINK_SECONDS", "60"))
REAL_TIMEOUT = 10.0
SKIPPED: collections.Counter[str] = collections.Counter()  # examples not compared, by reason
COVERED: dict[str, collections.Counter[str]] = {}  # per run name: features of the compared examples
COMBOS: dict[str, set[tuple[str, ...]]] = {}  # per run name: distinct option sets compared
STATS = Path(os.environ.get("ALIGNBATCH_ORACLE_STATS", str(FAILURES)))
# the long run: a fresh seed each time unless one is given (it is in the summary, to replay a run)
SLOW_SEED = int(os.environ.get("ALIGNBATCH_ORACLE_SEED") or random.SystemRandom().randrange(2**32))
SLOW_EXAMPLES = int(os.environ.get("ALIGNBATCH_ORACLE_EXAMPLES", "5000"))


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    try:
        return find_or_build()
    except OracleUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(autouse=True)
def _no_reference_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    # CRAM decoding must use -T only: HTSlib would otherwise try REF_PATH/the EBI server for a reference
    monkeypatch.setenv("REF_PATH", ":")
    monkeypatch.setenv("REF_CACHE", str(Path(tempfile.gettempdir()) / "alignbatch-no-ref-cache"))


def _diff(real: Outcome, ours: Outcome) -> str:
    a = real.report.decode("utf-8", "replace").splitlines()
    b = ours.report.decode("utf-8", "replace").splitlines()
    body = "\n".join(difflib.unified_diff(a, b, "alignstats", "engine", n=0, lineterm=""))
    return (
        f"exit codes: alignstats {real.exit_code}, engine {ours.exit_code}\n{body}\n"
        f"alignstats stderr:\n{real.stderr}\nengine stderr:\n{ours.stderr}"
    )


def _lines(o: Outcome, argv: list[str]) -> list[str]:
    if "-p" in argv:
        # with -p the tool logs "Start processing records." from the main thread while the worker
        # threads already run and log warnings and "Finished processing records.": their order is a
        # race, and as each log line is one fprintf and then its '\n', one can land between another's
        # text and newline ("...Start processing records.[AlignStats WARNING] ... tid 2 > 1", found by
        # a long run). So the racy messages are cut out of the text, not their lines dropped.
        text = o.stderr
        for racy in ("Start processing records.", "Finished processing records."):
            text = text.replace(f"[AlignStats INFO] {racy}", "")
        return [line for line in text.splitlines() if line.startswith("[AlignStats")]
    return o.tool_lines


def _deliberate(s: alignments.Scenario, real: Outcome, ours: Outcome) -> bool:
    """Documented deliberate differences (docs/engine.md), recognised by their exact shape."""
    a, b = _pairs(real.report), _pairs(ours.report)
    key = '    "CapHighCoverageNonTargetHits"'
    if real.exit_code == ours.exit_code == 0 and {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} == {
        key
    }:
        # Q9: the last gap's scan reads the word one past the longest contig - past alignstats'
        # allocation, where a small (heap) array is followed by malloc's chunk header (>= 20: +1 hit),
        # once for every time that contig is finished (records on it again after other tids)
        extra = int(a[key].rstrip(",")) - int(b[key].rstrip(","))
        return 1 <= extra <= alignments.longest_contig_finishes(s)
    if ours.exit_code == 65 and "(alignstats would crash)" in ours.stderr:
        # A -t line ending at 0 or a -m line starting past its end: alignstats dies on the first contig
        # with records that has such a line (and survives if that contig has none): SIGSEGV, or, when
        # the negative-size memset corrupts the heap first, glibc's abort ("double free or corruption
        # (out)", exit 134; found by a long run)
        return real.exit_code in (0, 134, 139)
    if real.exit_code is not None and real.exit_code > 128 and ours.exit_code == 0:
        # alignstats killed by a signal after its one-past-the-array write (heap overflow, UB)
        return alignments.real_tool_overflows(s)
    return False


def _pairs(report: bytes) -> dict[str, str]:
    return dict(line.split(":", 1) for line in report.decode("utf-8", "replace").splitlines() if ":" in line)


def signature(real: Outcome, ours: Outcome) -> str:
    """What kind of difference: exit codes and the differing report keys (one reproducer per kind)."""
    a = _pairs(real.report)
    b = _pairs(ours.report)
    keys = sorted(k.strip().strip('"') for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    lines = "" if real.tool_lines == ours.tool_lines else "-stderr"
    return f"exit{real.exit_code}-{ours.exit_code}{lines}-" + ("+".join(keys[:4]) or "same-report")


def _save(s: alignments.Scenario, work: Path, real: Outcome, ours: Outcome, name: str) -> Path:
    """Keep the failing case for a human, one directory per kind of difference; hypothesis replays the
    minimal (shrunk) example last, so what is left in the directory is the smallest reproducer."""
    dest = FAILURES / name / signature(real, ours)
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(work, dest)
    (dest / "alignstats.json").write_bytes(real.report)
    (dest / "engine.json").write_bytes(ours.report)
    (dest / "diff.txt").write_text(_diff(real, ours))
    (dest / "scenario.txt").write_text(repr(s) + "\n")
    return dest


def _features(s: alignments.Scenario, argv: list[str], real: Outcome) -> set[str]:
    """What one compared example exercised: options, input shape and record features."""
    f = {f"format {s.fmt}", f"exit {real.exit_code}", f"contigs {len(s.contigs)}"}
    f |= {f"option {a}" for a in argv if a.startswith("-")}
    f |= {"stdin"} if s.stdin else set()
    f |= {"no index"} if not s.index and s.fmt != "sam" else set()
    f |= {"no records"} if not s.records else set()
    keys = [alignments._sort_key(r) for r in s.records]
    f |= {"unsorted"} if keys != sorted(keys) else set()
    for r in s.records:
        f |= {f"flag 0x{bit:x}" for bit in alignments.FLAG_BITS if r.flag & bit}
        f |= {f"cigar {op}" for op in "MIDNSH=X" if op in r.cigar}
        f |= {f"tag {tag}" for tag, _, _ in r.tags}
        f |= {"seq *"} if not r.seq else {"seq N"} if "N" in r.seq else set()
        f |= {"qual *"} if r.seq and r.qual is None else set()
        f |= {"unplaced"} if r.tid < 0 else {"mate other contig"} if r.mtid not in (r.tid, -1) else set()
        if r.tid >= 0 and r.cigar and alignments.ref_end(r) > s.contigs[r.tid][1]:
            f.add("read past contig end")
    for kind, lines in (("targets", s.targets), ("mask", s.mask), ("regions", s.regions)):
        for line in lines or ():
            t = line.split()
            if len(t) < 3 or not t[1].lstrip("-").isdigit():
                f.add(f"{kind}: header/comment line")
            elif t[0] not in dict(s.contigs):
                f.add(f"{kind}: unknown contig")
            elif int(t[2]) <= int(t[1]):
                f.add(f"{kind}: zero-length line")
            elif int(t[2]) > dict(s.contigs)[t[0]]:
                f.add(f"{kind}: past contig end")
            else:
                f.add(f"{kind}: ordinary line")
    return f


def _tally(s: alignments.Scenario, argv: list[str], real: Outcome, name: str) -> None:
    """Count the example's features and keep the summary on disk (a killed long run still has it)."""
    covered = COVERED.setdefault(name, collections.Counter())
    combos = COMBOS.setdefault(name, set())
    covered["examples compared"] += 1
    covered["records compared"] += len(s.records)
    covered.update(_features(s, argv, real))
    combos.add(tuple(sorted({a for a in argv if a.startswith("-") and a not in ("-i", "-o")})))
    if covered["examples compared"] % 20 == 1:
        _write_stats(name)


def _write_stats(name: str) -> None:
    covered = COVERED.get(name, collections.Counter())
    lines = [f"seed: {SLOW_SEED if name == 'slow' else 20261201}"]
    lines += [f"distinct option sets: {len(COMBOS.get(name, ()))}"]
    lines += [f"{k}: {v}" for k, v in sorted(covered.items())]
    lines += [f"skipped, {k}: {v}" for k, v in sorted(SKIPPED.items())]
    STATS.mkdir(parents=True, exist_ok=True)
    (STATS / f"{name}-coverage.txt").write_text("\n".join(lines) + "\n")


def check(oracle: Oracle, s: alignments.Scenario, name: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="oracle-"))
    try:
        alignments.write(s, work)
        argv = s.argv()
        note(f"argv: {argv}")
        stdin = work / s.input_name if s.stdin else None
        real = oracle.run(argv, work, report=alignments.REPORT, stdin=stdin, timeout=REAL_TIMEOUT)
        if real.exit_code is None:
            if "-p" in argv:
                SKIPPED["alignstats -p hang (Q13)"] += 1
                return  # the real tool's -p race (Q13): nothing to compare
            raise AssertionError(f"alignstats timed out on {s.command()}")
        if alignments.quality_reads_past_record(s):
            SKIPPED["qualities past a record (undefined in alignstats)"] += 1
            return
        ours = run_engine(argv, work, report=alignments.REPORT, stdin=stdin)
        same = (
            real.exit_code == ours.exit_code
            and real.report == ours.report
            and _lines(real, argv) == _lines(ours, argv)
        )
        _tally(s, argv, real, name)
        if not same and not _deliberate(s, real, ours):
            dest = _save(s, work, real, ours, name)
            raise AssertionError(f"{s.command()}\nreproducer: {dest}\n{_diff(real, ours)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


_COMMON = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    "phases": [Phase.explicit, Phase.generate, Phase.shrink],
    "print_blob": True,
}


# pytest-timeout's default (setup.cfg) would kill a run part-way (it did, at 300 s, a long run): the
# time budget plus shrinking, plus room for the last examples, real-tool timeouts and the replay
RUN_TIMEOUT = BUDGET + SHRINK + 300


@pytest.mark.timeout(RUN_TIMEOUT)
@seed(20261201)
@settings(max_examples=400, **_COMMON)
@given(s=alignments.scenarios())
def test_engine_matches_real_alignstats(oracle: Oracle, s: alignments.Scenario) -> None:
    _run_one(oracle, s, "ci")


@pytest.fixture(autouse=True, scope="module")
def _coverage_summary() -> Iterator[None]:
    yield
    for name in COVERED:
        _write_stats(name)


@dataclass
class _Budget:
    """Bounds a run: new examples stop after BUDGET s; shrinking a failure stops after SHRINK s."""

    deadline: float
    shrink_deadline: float = 0.0
    failing: set[str] = field(default_factory=set)  # reprs of the failing scenarios seen


_BUDGETS: dict[str, _Budget] = {}


def _run_one(oracle: Oracle, s: alignments.Scenario, name: str) -> None:
    # (the scenario is always drawn, skipped or not: hypothesis needs the same draws on a replay)
    budget = _BUDGETS.setdefault(name, _Budget(time.monotonic() + BUDGET))
    now = time.monotonic()
    if not budget.failing and now > budget.deadline:
        return  # over the time budget, nothing found: the remaining examples are not run
    key = repr(s)
    if budget.failing and now > budget.shrink_deadline and key not in budget.failing:
        # Shrinking has had its time: candidates not yet known to fail pass, so hypothesis ends with
        # the smallest failure found so far (which still fails when replayed: it is in `failing`).
        return
    try:
        check(oracle, s, name)
    except AssertionError:
        if not budget.failing:
            budget.shrink_deadline = time.monotonic() + SHRINK
        budget.failing.add(key)
        raise


# Long runs draw in chunks: hypothesis has no time limit and keeps drawing (and returning at once) until
# max_examples, ~40 ms per scenario on this machine, so 100,000 examples after a 30-minute budget would
# draw for an hour past it and pytest-timeout would fail the run. A chunk of this many examples ends within
# seconds of the budget; each chunk has its own seed (SLOW_SEED + chunk number), so a run replays whole.
SLOW_CHUNK = 500


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT)
def test_engine_matches_real_alignstats_long(oracle: Oracle) -> None:
    budget = _BUDGETS.setdefault("slow", _Budget(time.monotonic() + BUDGET))
    done = 0
    chunk = 0
    while done < SLOW_EXAMPLES and time.monotonic() < budget.deadline:
        n = min(SLOW_CHUNK, SLOW_EXAMPLES - done)
        _long_chunk(oracle, SLOW_SEED + chunk, n)
        done += n
        chunk += 1
    COVERED.setdefault("slow", collections.Counter())["chunks run"] = chunk


def _long_chunk(oracle: Oracle, chunk_seed: int, n: int) -> None:
    @seed(chunk_seed)
    @settings(max_examples=n, **_COMMON)
    @given(s=alignments.scenarios())
    def run(s: alignments.Scenario) -> None:
        note(f"long run seed {SLOW_SEED}, chunk seed {chunk_seed} (ALIGNBATCH_ORACLE_SEED={SLOW_SEED})")
        _run_one(oracle, s, "slow")

    run()


def test_racy_p_messages_are_cut_out_not_their_lines() -> None:
    """Found by a long run (seed 3644114689): with -p the tool's main thread wrote "Start processing
    records." between a worker thread's warning text and its newline; the warning must still compare."""
    warning = (
        "[AlignStats WARNING] Record not in coordinate-sorted order. Results may not be accurate: tid 2 > 1"
    )
    loaded, start = (
        "[AlignStats INFO] Targets loaded successfully.",
        "[AlignStats INFO] Start processing records.",
    )
    done, writing = "[AlignStats INFO] Finished processing records.", "[AlignStats INFO] Writing report."
    real = f"{loaded}\n{start}{warning}\n{done}\n\n{writing}\n"
    ours = f"{loaded}\n{start}\n{warning}\n{done}\n{writing}\n"
    a, b = (_lines(Outcome(0, b"", err, 0.0), ["-p"]) for err in (real, ours))
    assert a == b == [loaded, warning, writing]
