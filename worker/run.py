"""One worker run: resolve inputs, check them, stage or stream, run the tool, publish outputs.

Order matters for cost and for safety:
1. parse the tool's argv with its profile (usage errors before any I/O);
2. HEAD every input (missing → 66, denied → 77) and find companion files (`worker.inputs`);
3. check the main input with two ranged reads (header, EOF block) before staging gigabytes;
4. check free scratch space against the sizes to stage, then stage (BEDs, FASTA, index, and the main
   input unless it is streamed or read in place), verifying each download (`worker.transfer`);
5. run the tool on local paths (`worker.argv`), feeding a streamed input to its stdin while it
   downloads (`worker.execute`);
6. only after exit 0 and a verified stream: rewrite the report, upload/move outputs (`worker.publish`).
Whatever happens, the tool is stopped, transfers in flight are cancelled (multipart uploads aborted)
and the scratch directory is removed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import BadInput, TransientIOError, UsageError
from core.objectstore import Stores
from worker import checks, fanout
from worker.argv import plan_argv
from worker.cpus import with_engine_cpus
from worker.engines import resolve_engine
from worker.execute import ToolRunner, reference_environment
from worker.inputs import Input, InputPlanner, Mode
from worker.publish import Publisher
from worker.staging import Scratch, create_scratch, ensure_space, safe_name, scratch_base
from worker.tools import ParsedCommand, Role, Slot, parse_command
from worker.transfer import TransferResult, Transfers, expectation_for


@dataclass(frozen=True)
class WorkerOptions:
    command: tuple[str, ...]
    mode: Mode = "auto"
    index: str | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    scratch: str | None = None
    sse_kms_key_id: str | None = None
    job_id: str | None = None
    attempt: str | None = None


@dataclass
class RunSummary:
    tool: str
    engine: str = ""
    engine_version: str | None = None
    mode: str = "stage"
    exit_code: int | None = None  # the tool's, once it ran
    bytes_in: int = 0
    bytes_out: int = 0
    input_version_id: str | None = None  # the main input's version, as its store reported it
    transfers: list[TransferResult] = field(default_factory=list)


class WorkerRun:
    def __init__(self, opts: WorkerOptions, log: Any) -> None:
        self.opts = opts
        self.log = log
        self.transfers = Transfers(sse_kms_key_id=opts.sse_kms_key_id)
        self.scratch: Scratch | None = None
        self.summary = RunSummary(tool=opts.command[0] if opts.command else "")
        self.stores = Stores(sse_kms_key_id=opts.sse_kms_key_id)
        self.planner = InputPlanner(self.stores, log, mode=opts.mode, index=opts.index)
        self.runner = ToolRunner(self.transfers, log, self._record)
        self.publisher = Publisher(
            self.transfers, self.stores, self._record, job_id=opts.job_id, attempt=opts.attempt
        )

    # -- entry ---------------------------------------------------------------------------------------
    def execute(self) -> int:
        try:
            return self._execute()
        finally:
            self._teardown()

    def _teardown(self) -> None:
        self.runner.stop()
        self.transfers.cancel()
        if self.scratch is not None:
            self.scratch.cleanup()

    def _execute(self) -> int:
        opts = self.opts
        planner = self.planner
        cmd = parse_command(opts.command, declared_inputs=opts.inputs, declared_outputs=opts.outputs)
        checks.check_usage(cmd)
        fan = fanout.fanout_request(cmd, os.environ)
        shard = fan if isinstance(fan, fanout.ShardRequest) else None
        if fan is not None and opts.mode == "stream":
            raise UsageError(
                "--stream is not possible for --shard-of/--merge-parts: a shard reads byte ranges of an "
                "indexed file, a merge reads part files"
            )
        if shard is not None:
            cmd = fanout.with_part_output(cmd, shard)
        main_slot = planner.main_slot(cmd)
        if opts.index and main_slot is None:
            raise UsageError("--index given but the tool has no BAM/CRAM input option to attach it to")
        engine = fanout.fanout_engine(cmd.tool, self.log) if fan is not None else resolve_engine(cmd.tool)
        self.summary.engine, self.summary.engine_version = engine.name, engine.version
        if shard is not None and fanout.part_present(self.stores, shard.part, self.log):
            self.summary.mode = "part-present"
            return 0  # the same work is done already: a retried fan-out must not redo it

        # 2. what the inputs are
        inputs = {
            slot.number: planner.resolve(slot.location, slot.text, f"input {slot.option}".strip())
            for slot in cmd.inputs
            if not slot.is_stdio
        }
        main = inputs.get(main_slot.number) if main_slot is not None else None
        if main is not None and main.info.version_id not in (None, "null"):
            self.summary.input_version_id = main.info.version_id
        stream = fan is None and planner.decide_stream(cmd, main_slot, main)
        # a shard child of an S3 object fetches only its byte ranges into a sparse file
        sparse = shard is not None and main is not None and main.needs_fetch
        local = main is not None and not main.needs_fetch
        self.summary.mode = "stream" if stream else "ranges" if sparse else "local" if local else "stage"
        self.scratch = create_scratch(scratch_base(opts.scratch), opts.job_id, opts.attempt)

        # 3. check the main input before moving it
        fmt: checks.Format | None = None
        header: checks.HeaderInfo | None = None
        if main is not None and cmd.profile.name in ("alignstats", "alignbatch-index"):
            fmt, header = planner.check_alignments(self.scratch, main)
            if shard is not None:
                fanout.check_format(main, fmt)
            if cmd.profile.name == "alignstats":
                checks.check_cram_reference(main.display, fmt, cmd.has_option("-T"))

        # 4. space, then staging
        self._stage(cmd, inputs, main_slot, main, stream, header, shard if sparse else None)

        # 5. run the tool on local files only
        plan = plan_argv(
            self.scratch,
            cmd,
            engine,
            inputs,
            main_slot if stream else None,
            fmt,
            extra_args=fanout.shard_index_args(cmd, shard) if shard is not None else (),
            # a child's part records its input and BED paths: the same in every child (worker/argv.py)
            in_scratch=shard is not None,
        )
        # the built-in engine uses the job's vCPUs for one input (worker/cpus.py); the real tool ignores it
        env = with_engine_cpus(reference_environment(dict(os.environ), self.scratch.root, self.log))
        rc = self.runner.run(
            engine, plan.argv, main if stream else None, plan.stdout_path, plan.inherit_stdin, env, plan.cwd
        )
        self.summary.exit_code = rc
        if rc != 0:
            if fmt == "cram" and main is not None and self.runner.reference_problem is not None:
                raise cram_reference_error(main.display, cmd, self.runner.reference_problem)
            return rc

        # 6. publish, only after success
        report_input = None
        if shard is not None and main is not None:
            fanout.annotate_part(plan.outputs[shard.prefix_slot.number], main)
        elif isinstance(fan, fanout.MergeRequest):
            report_input = fanout.merge_report_input(inputs, fan)
        self.publisher.publish_outputs(cmd, engine, inputs, main, plan, report_input=report_input)
        return 0

    def _stage(
        self,
        cmd: ParsedCommand,
        inputs: dict[int, Input],
        main_slot: Slot | None,
        main: Input | None,
        stream: bool,
        header: checks.HeaderInfo | None,
        shard: fanout.ShardRequest | None = None,
    ) -> None:
        """`shard`: the main input is an S3 object of which only the shard's byte ranges are staged."""
        assert self.scratch is not None
        companions = self.planner.companions(cmd, main_slot, main, stream)
        index = None
        if shard is not None and main_slot is not None:
            # staged first and read: it says which ranges of the main input to fetch
            index = next((c for c in companions if c.attach_to == main_slot.number), None)
            companions = [c for c in companions if c is not index]
        skip_main = stream or shard is not None  # streamed, or staged by ranges (their sizes checked then)
        to_stage = [i for i in inputs.values() if i.needs_fetch and not (i is main and skip_main)]
        to_stage += [c.input for c in [*companions, *([index] if index else [])] if c.input.needs_fetch]
        ensure_space(self.scratch, sum(i.info.size for i in to_stage), f"{len(to_stage)} input file(s)")
        # Small inputs first, so the BED check fails before the large main input is fetched.
        for number, inp in inputs.items():
            if inp is not main and inp.needs_fetch:
                self._download(inp, self.scratch.input_dir(number) / safe_name(inp.location.name))
        if header is not None and cmd.profile.name == "alignstats":
            for slot in cmd.inputs:
                if slot.option == "-t" and slot.number in inputs:
                    bed = inputs[slot.number]
                    assert bed.local_path is not None
                    checks.check_target_bed(bed.display, bed.local_path, header.contigs)
        if main is not None and main_slot is not None and main.needs_fetch and not stream:
            dest = self.scratch.input_dir(main_slot.number) / safe_name(main.location.name)
            if shard is not None:
                assert header is not None
                result = fanout.stage_shard(
                    shard, main, dest, index, header, self.scratch, self.transfers, self._download, self.log
                )
                self._record(result)
            else:
                self._download(main, dest)
        self.planner.place_companions(self.scratch, inputs, companions, self._download)

    def _download(self, inp: Input, dest: Path) -> None:
        expect = expectation_for(inp.info, sse=inp.info.sse)
        if expect.algorithm is None:
            self.log.warning("verify_size_only", uri=inp.display, reason=expect.note)
        result = self.transfers.download(inp.info, dest, expect)
        inp.local_path = str(dest)
        self._record(result)

    def _record(self, result: TransferResult) -> None:
        self.summary.transfers.append(result)
        if result.direction in ("download", "stream"):
            self.summary.bytes_in += result.bytes
        else:
            self.summary.bytes_out += result.bytes
        self.log.info("transfer", **result.log_fields())


def cram_reference_error(display: str, cmd: ParsedCommand, problem: tuple[str, str]) -> BadInput:
    """The tool failed because HTSlib could not use the CRAM's reference: say so in one line (65)
    instead of the tool's exit code and its "damaged file" guess. Never retryable: the same -T fails
    the same way, and the reference is never looked up over the network."""
    ref = next((s.text for s in cmd.inputs if s.option == "-T"), "(none)")
    kind, detail = problem
    if kind == "mismatch":
        return BadInput(
            f"{display}: -T {ref} is not the reference the CRAM was written with (MD5 mismatch, ref "
            f"{detail}); pass that FASTA"
        )
    return BadInput(
        f"{display}: the CRAM's reference sequence {detail!r} is not in -T {ref} (references are never "
        "fetched over the network); pass the FASTA the CRAM was written with"
    )


def describe_roles(cmd: ParsedCommand) -> list[dict[str, str]]:
    """For logs: each file argument and its role."""
    return [
        {"option": s.option, "uri": s.text, "role": s.role.value, "kind": s.kind.value} for s in cmd.slots
    ]


__all__ = ["Input", "Role", "RunSummary", "TransientIOError", "WorkerOptions", "WorkerRun", "describe_roles"]
