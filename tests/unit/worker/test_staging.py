"""Scratch directories and safe file names, without servers."""

from __future__ import annotations

from pathlib import Path

from worker.staging import Scratch, create_scratch, ensure_space, safe_name


def test_safe_names() -> None:
    assert safe_name("a b ü.bam") == "a b ü.bam"
    assert safe_name("..") == "__"
    assert "/" not in safe_name("a/b")
    long = safe_name("x" * 300 + ".bam")
    assert long.endswith(".bam") and len(long.encode()) < 100


def test_scratch_is_scoped_and_space_checked(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    s = create_scratch(tmp_path, "job-1", "2")
    assert s.root == tmp_path / "alignbatch" / "job-1" / "2"
    assert isinstance(s, Scratch)
    ensure_space(s, 1024, "x")
    from core.errors import ScratchFull

    monkeypatch.setenv("ALIGNBATCH_SCRATCH_RESERVE_MIB", str(1 << 40))
    try:
        ensure_space(s, 1024, "1 input file(s)")
    except ScratchFull as exc:
        assert "needs" in str(exc) and str(s.root) in str(exc) and exc.exit_code == 73
    else:
        raise AssertionError("expected ScratchFull")
    s.cleanup()
    assert not s.root.exists()
