"""The difference-array depth (two writes per CIGAR block + one prefix sum per chromosome) gives exactly
the per-base walk's numbers: same accumulators on the edge cases and on a whole WGS case."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.engine import kernel as k
from worker.engine.engine import Engine, EngineConfig
from worker.engine.source import InputFile


def _accumulate(path: Path, config: EngineConfig, diff: bool) -> dict:
    inp = InputFile(str(path), "bam", None)
    try:
        assert inp.header is not None
        engine = Engine(config, inp.header, str(path))
        assert engine.depth_diff  # the configs below all allow it
        if not diff:
            engine.depth_diff = False
            engine.params[k.P_DEPTH_DIFF] = 0
        engine.feed(inp.chunks())
        return engine.finish().to_json()
    finally:
        inp.close()


CONFIGS = {
    "C": EngineConfig(capture=False),
    "C_D": EngineConfig(capture=False, keep_dups=True),
    "C_q20_F1024": EngineConfig(capture=False, min_mapq=20, excluded_flags=1024),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_diff_depth_equals_per_base_on_edge_cases(data_dir: Path, name: str) -> None:
    config = CONFIGS[name]
    for bam in ("i_edge.bam", "h_source.bam"):
        assert _accumulate(data_dir / bam, config, True) == _accumulate(data_dir / bam, config, False)


def test_diff_depth_equals_per_base_on_wgs(refdata: Path) -> None:
    config = CONFIGS["C"]
    assert _accumulate(refdata / "a_wgs.bam", config, True) == _accumulate(
        refdata / "a_wgs.bam", config, False
    )


def test_base_filters_and_capture_keep_the_per_base_walk(data_dir: Path) -> None:
    inp = InputFile(str(data_dir / "i_edge.bam"), "bam", None)
    try:
        assert inp.header is not None
        for config in (
            EngineConfig(capture=False, min_baseq=20),
            EngineConfig(capture=False, overlap=k.OVERLAP_POS),
            EngineConfig(capture=True),
        ):
            assert not Engine(config, inp.header, "x").depth_diff
    finally:
        inp.close()
