"""An array child's command from the manifest line of its AWS_BATCH_JOB_ARRAY_INDEX (#18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.arrays import manifest_text
from core.errors import BadInput, UsageError
from worker.array_task import manifest_line, resolve


def test_child_i_runs_line_i_and_other_commands_pass_through(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(
        manifest_text(
            [("r1", ["alignbatch-worker", "--", "alignstats", "-i", "a.bam"]),
             ("r2", ["alignbatch-worker", "--", "alignstats", "-i", "b ü.bam"])]
        )
    )  # fmt: skip
    env = {"AWS_BATCH_JOB_ARRAY_INDEX": "1"}
    assert resolve(["--array-manifest", str(manifest)], env) == ["--", "alignstats", "-i", "b ü.bam"]
    assert resolve(["--", "alignstats", "-i", "x.bam"], env) == ["--", "alignstats", "-i", "x.bam"]


@pytest.mark.parametrize(
    "argv, env, error",
    [
        (["--array-manifest"], {"AWS_BATCH_JOB_ARRAY_INDEX": "0"}, UsageError),
        (["--array-manifest", "m", "extra"], {"AWS_BATCH_JOB_ARRAY_INDEX": "0"}, UsageError),
        (["--array-manifest", "m"], {}, UsageError),  # not an array child
    ],
)
def test_misuse_is_a_usage_error(argv: list[str], env: dict[str, str], error: type) -> None:
    with pytest.raises(error):
        resolve(argv, env)


def test_a_line_that_is_missing_or_not_an_entry_is_bad_input() -> None:
    text = manifest_text([("r1", ["alignbatch-worker", "--help"])]).decode()
    assert manifest_line(text, 0) == ["--help"]
    for bad_text, index in ((text, 1), ("not json\n", 0), ('{"argv": []}\n', 0), ('{"argv": [1]}\n', 0)):
        with pytest.raises(BadInput):
            manifest_line(bad_text, index)
