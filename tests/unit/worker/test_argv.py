"""The argv rewrite, without servers: file arguments pointed at local paths, scratch or `-`."""

from __future__ import annotations

from pathlib import Path

from core.locations import parse_location
from core.objectstore import ObjectInfo
from worker.argv import plan_argv
from worker.engines import Engine
from worker.inputs import Input
from worker.staging import create_scratch
from worker.tools import ParsedCommand, parse_command

ENGINE = Engine("alignstats", ("/usr/bin/alignstats",), "0.11")


def _cmd() -> ParsedCommand:
    return parse_command(("alignstats", "-i", "s3://bkt/x.bam", "-o", "s3://bkt/x.json"))


def test_a_staged_input_and_an_output_point_into_scratch(tmp_path: Path) -> None:
    scratch = create_scratch(tmp_path, "job", "1")
    cmd = _cmd()
    main = cmd.slot_for("-i")
    assert main is not None
    loc = parse_location("s3://bkt/x.bam")
    inputs = {main.number: Input(loc, ObjectInfo(loc, 4, "e"), "s3://bkt/x.bam", local_path="/s/in/x.bam")}
    plan = plan_argv(scratch, cmd, ENGINE, inputs, None, "bam")
    out_slot = cmd.slot_for("-o")
    assert out_slot is not None
    out = plan.outputs[out_slot.number]
    assert plan.argv == ["/usr/bin/alignstats", "-i", "/s/in/x.bam", "-o", str(out)]
    assert out.parent.is_relative_to(scratch.root) and plan.stdout_path is None and not plan.inherit_stdin


def test_a_streamed_input_is_stdin_with_its_format(tmp_path: Path) -> None:
    scratch = create_scratch(tmp_path, "job", "1")
    cmd = _cmd()
    main = cmd.slot_for("-i")
    plan = plan_argv(scratch, cmd, ENGINE, {}, main, "cram")
    assert plan.argv[1:3] == ["-i", "-"] and plan.argv[-2:] == ["-j", "cram"]
