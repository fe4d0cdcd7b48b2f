"""The worker's command line as a typed value: `alignbatch-worker [OPTIONS] -- TOOL ARGS...`.

The controller's planner builds a `WorkerCommand`, the ledger stores it as JSON, submission renders it
with `argv(job_ids)`, and the worker parses its own argv back with `WorkerCommand.parse` (the same options
as worker/cli.py's argparse). An upstream job's id is a `JobRef` part, never text: a tool argument that
merely contains "{job_id:summary}" (an object key can) is passed through verbatim.
"""

from __future__ import annotations

import argparse
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NoReturn

from core.errors import UsageError
from core.logs import LOG_LEVELS

WORKER_PROGRAM = "alignbatch-worker"
Mode = Literal["stage", "stream"]

# The only form a command written before JobRef existed carried an upstream job id in (planner meta):
# `job_id_<step>={job_id:<step>}`, the whole argument. Nothing else is converted when an old ledger loads.
_LEGACY_JOB_ID = re.compile(r"^(job_id_(\w+)=)\{job_id:(\w+)\}$")


@dataclass(frozen=True)
class JobRef:
    """The executor job id of the upstream `step`, rendered as `prefix` + id ('' when it did not run)."""

    step: str
    prefix: str = ""

    def render(self, job_ids: Mapping[str, str]) -> str:
        return self.prefix + job_ids.get(self.step, "")


Arg = str | JobRef


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see alignbatch-worker --help)")


@functools.cache
def _parser() -> argparse.ArgumentParser:
    # Built once: parse_args keeps no state, and an old ledger parses every job row's command.
    # Keep in step with worker/cli.py's build_parser (defaults from the environment stay the worker's).
    p = _Parser(prog=WORKER_PROGRAM, add_help=False)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--stage", dest="mode", action="store_const", const="stage")
    mode.add_argument("--stream", dest="mode", action="store_const", const="stream")
    p.add_argument("--index")
    p.add_argument("--input", action="append", default=[])
    p.add_argument("--output", action="append", default=[])
    p.add_argument("--scratch")
    p.add_argument("--sse-kms-key-id", default=None)
    p.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default=None)
    return p


@dataclass(frozen=True)
class WorkerCommand:
    tool: str
    tool_args: tuple[Arg, ...] = ()
    mode: Mode | None = None  # None: the worker decides (stream when it can)
    index: str | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    scratch: str | None = None
    sse_kms_key_id: str | None = None
    log_level: str | None = None
    program: str = field(default=WORKER_PROGRAM, compare=True)

    def refs(self) -> tuple[str, ...]:
        """Upstream steps whose job ids this command carries."""
        return tuple(a.step for a in self.tool_args if isinstance(a, JobRef))

    def tool_command(self, job_ids: Mapping[str, str] | None = None) -> tuple[str, ...]:
        """The tool and its arguments (what follows `--`), with JobRefs filled from `job_ids`."""
        ids = job_ids or {}
        return (self.tool, *(a.render(ids) if isinstance(a, JobRef) else a for a in self.tool_args))

    def args(self, job_ids: Mapping[str, str] | None = None) -> tuple[str, ...]:
        """The arguments after the program name, with JobRefs filled from `job_ids`."""
        out: list[str] = []
        if self.mode:
            out.append(f"--{self.mode}")
        if self.index is not None:
            out += ["--index", self.index]
        for value in self.inputs:
            out += ["--input", value]
        for value in self.outputs:
            out += ["--output", value]
        for flag, option in (
            ("--scratch", self.scratch),
            ("--sse-kms-key-id", self.sse_kms_key_id),
            ("--log-level", self.log_level),
        ):
            if option is not None:
                out += [flag, option]
        return (*out, "--", *self.tool_command(job_ids))

    def argv(self, job_ids: Mapping[str, str] | None = None) -> tuple[str, ...]:
        return (self.program, *self.args(job_ids))

    @classmethod
    def parse(cls, args: Sequence[str], *, program: str = WORKER_PROGRAM) -> WorkerCommand:
        """Parse the worker's arguments (after the program name), as worker/cli.py accepts them: options,
        then `--`, then the tool and its arguments. Raises UsageError."""
        args = list(args)
        if "--" in args:
            cut = args.index("--")
            own, command = args[:cut], args[cut + 1 :]
        else:
            own, command = args, []
        ns = _parser().parse_args(own)
        if not command:
            raise UsageError("no tool given: alignbatch-worker [options] -- TOOL ARGS...")
        return cls(
            tool=command[0],
            tool_args=tuple(command[1:]),
            mode=ns.mode,
            index=ns.index,
            inputs=tuple(ns.input),
            outputs=tuple(ns.output),
            scratch=ns.scratch,
            sse_kms_key_id=ns.sse_kms_key_id,
            log_level=ns.log_level,
            program=program,
        )

    # -- JSON (the ledger's job spec) -----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "tool": self.tool,
            "tool_args": [
                {"job_ref": a.step, "prefix": a.prefix} if isinstance(a, JobRef) else a
                for a in self.tool_args
            ],
            "mode": self.mode,
            "index": self.index,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "scratch": self.scratch,
            "sse_kms_key_id": self.sse_kms_key_id,
            "log_level": self.log_level,
        }

    @classmethod
    def from_json(cls, data: Any) -> WorkerCommand:
        """The form `to_json` writes, or a plain argv list (what ledgers written before this type hold)."""
        if isinstance(data, list):
            return cls.from_legacy_argv(data)
        if not isinstance(data, dict):
            raise ValueError(f"not a worker command: {data!r}")
        tool_args: list[Arg] = []
        for a in data.get("tool_args", []):
            tool_args.append(JobRef(a["job_ref"], a.get("prefix", "")) if isinstance(a, dict) else str(a))
        return cls(
            tool=data["tool"],
            tool_args=tuple(tool_args),
            mode=data.get("mode"),
            index=data.get("index"),
            inputs=tuple(data.get("inputs") or ()),
            outputs=tuple(data.get("outputs") or ()),
            scratch=data.get("scratch"),
            sse_kms_key_id=data.get("sse_kms_key_id"),
            log_level=data.get("log_level"),
            program=data.get("program") or WORKER_PROGRAM,
        )

    @classmethod
    def from_legacy_argv(cls, argv: Sequence[str]) -> WorkerCommand:
        """An old ledger's command: a full argv whose planner meta arguments held `{job_id:STEP}` tokens."""
        if not argv:
            raise ValueError("empty command")
        cmd = cls.parse(list(argv[1:]), program=str(argv[0]))
        parts: list[Arg] = []
        for a in cmd.tool_args:
            m = _LEGACY_JOB_ID.match(a) if isinstance(a, str) else None
            parts.append(JobRef(m.group(3), m.group(1)) if m and m.group(2) == m.group(3) else a)
        return replace(cmd, tool_args=tuple(parts))
