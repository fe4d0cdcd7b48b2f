"""One worker run: resolve inputs, check them, stage or stream, run the tool, publish outputs.

Order matters for cost and for safety:
1. parse the tool's argv with its profile (usage errors before any I/O);
2. HEAD every input (missing → 66, denied → 77) and find companion files;
3. check the main input with two ranged GETs (header, EOF block) before staging gigabytes;
4. check free scratch space against the sizes to stage, then stage (BEDs, FASTA, index, and the main
   input unless it is streamed), verifying each download;
5. run the tool, feeding a streamed input to its stdin while it downloads;
6. only after exit 0 and a verified stream: rewrite the report, upload/move outputs.
Whatever happens, the tool is stopped, transfers in flight are cancelled (multipart uploads aborted)
and the scratch directory is removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.errors import AccessDenied, BadInput, ObjectMissing, TransientIOError, UsageError, WorkerError
from core.locations import Location, LocationError, parse_location
from core.objectstore import ObjectInfo, Stores, translate_error
from core.version import __version__
from worker import checks
from worker.engines import Engine, resolve_engine
from worker.report import rewrite_input_fields
from worker.staging import Scratch, create_scratch, ensure_space, safe_name, scratch_base
from worker.tools import Kind, ParsedCommand, Role, Slot, companion_suffixes, fasta_companions, parse_command
from worker.transfer import (
    StreamHandle,
    TransferResult,
    Transfers,
    copy_local,
    expectation_for,
)

Mode = Literal["auto", "stage", "stream"]
PROBE_BYTES = 1024 * 1024  # first read of a streamed input for the header check; grows if needed
MAX_PROBE_BYTES = 64 * 1024 * 1024
METADATA_LIMIT = 1800  # S3 allows 2 KB of user metadata in total


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
class Input:
    """An input file the tool reads: where it is, what the store says about it, where the tool sees it."""

    location: Location
    info: ObjectInfo
    display: str  # as the user gave it (for messages and the report)
    host_path: str | None = None  # the store's own file on this host, read in place; None: fetch it
    local_path: str | None = None  # where the tool reads it: host_path, the staged copy, or a link

    @property
    def needs_fetch(self) -> bool:
        return self.host_path is None


@dataclass(frozen=True)
class Companion:
    """A file HTSlib finds by name next to another input: `<that input's local path><suffix>`."""

    attach_to: int  # slot number of the input it belongs to
    suffix: str  # ".bai", ".crai", ".fai", ".gzi" ...
    input: Input


@dataclass(frozen=True)
class ArgvPlan:
    argv: list[str]
    outputs: dict[int, Path]  # output slot number -> where the tool writes it in scratch
    stdout_path: Path | None  # the tool's stdout captured here (alignstats report without -o)
    inherit_stdin: bool


@dataclass
class RunSummary:
    tool: str
    engine: str = ""
    engine_version: str | None = None
    mode: str = "stage"
    exit_code: int | None = None  # the tool's, once it ran
    bytes_in: int = 0
    bytes_out: int = 0
    transfers: list[TransferResult] = field(default_factory=list)


class WorkerRun:
    def __init__(self, opts: WorkerOptions, log: Any) -> None:
        self.opts = opts
        self.log = log
        self.transfers = Transfers(sse_kms_key_id=opts.sse_kms_key_id)
        self.scratch: Scratch | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self.summary = RunSummary(tool=opts.command[0] if opts.command else "")
        self.stores = Stores(sse_kms_key_id=opts.sse_kms_key_id)

    # -- entry ---------------------------------------------------------------------------------------
    def execute(self) -> int:
        try:
            return self._execute()
        finally:
            self._teardown()

    def _teardown(self) -> None:
        child = self.child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.transfers.cancel()
        if self.scratch is not None:
            self.scratch.cleanup()

    def _execute(self) -> int:
        opts = self.opts
        cmd = parse_command(opts.command, declared_inputs=opts.inputs, declared_outputs=opts.outputs)
        checks.check_usage(cmd)
        main_slot = self._main_slot(cmd)
        if opts.index and main_slot is None:
            raise UsageError("--index given but the tool has no BAM/CRAM input option to attach it to")
        engine = resolve_engine(cmd.tool)
        self.summary.engine, self.summary.engine_version = engine.name, engine.version

        # 2. what the inputs are
        inputs = {
            slot.number: self._resolve(slot.location, slot.text, f"input {slot.option}".strip())
            for slot in cmd.inputs
            if not slot.is_stdio
        }
        main = inputs.get(main_slot.number) if main_slot is not None else None
        stream = self._decide_stream(cmd, main_slot, main)
        self.summary.mode = "stream" if stream else ("local" if main and not main.needs_fetch else "stage")
        self.scratch = create_scratch(scratch_base(opts.scratch), opts.job_id, opts.attempt)

        # 3. check the main input before moving it
        fmt: checks.Format | None = None
        header: checks.HeaderInfo | None = None
        if main is not None and cmd.profile.name in ("alignstats", "alignbatch-index"):
            fmt, header = self._check_alignments(main)
            if cmd.profile.name == "alignstats":
                checks.check_cram_reference(main.display, fmt, cmd.has_option("-T"))

        # 4. space, then staging
        self._stage(cmd, inputs, main_slot, main, stream, header)

        # 5. run the tool on local files only
        plan = self._plan_argv(cmd, engine, inputs, main_slot if stream else None, fmt)
        rc = self._run_tool(engine, plan.argv, main if stream else None, plan.stdout_path, plan.inherit_stdin)
        self.summary.exit_code = rc
        if rc != 0:
            return rc

        # 6. publish, only after success
        self._publish_outputs(cmd, engine, inputs, main, plan)
        return 0

    def _stage(
        self,
        cmd: ParsedCommand,
        inputs: dict[int, Input],
        main_slot: Slot | None,
        main: Input | None,
        stream: bool,
        header: checks.HeaderInfo | None,
    ) -> None:
        assert self.scratch is not None
        companions = self._companions(cmd, main_slot, main, stream)
        to_stage = [i for i in inputs.values() if i.needs_fetch and not (i is main and stream)]
        to_stage += [c.input for c in companions if c.input.needs_fetch]
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
            self._download(main, self.scratch.input_dir(main_slot.number) / safe_name(main.location.name))
        self._place_companions(inputs, companions)

    def _plan_argv(
        self,
        cmd: ParsedCommand,
        engine: Engine,
        inputs: dict[int, Input],
        streamed_slot: Slot | None,
        fmt: checks.Format | None,
    ) -> ArgvPlan:
        """The argv with every file argument pointing at scratch (or `-` for the streamed input)."""
        assert self.scratch is not None
        is_alignstats = cmd.profile.name == "alignstats"
        paths: dict[int, str] = {n: i.local_path for n, i in inputs.items() if i.local_path}
        out_paths: dict[int, Path] = {}
        for slot in cmd.outputs:
            if not slot.is_stdio:
                out_paths[slot.number] = self.scratch.output_dir(slot.number) / safe_name(slot.location.name)
                paths[slot.number] = str(out_paths[slot.number])
        out_slot = cmd.slot_for("-o")
        capture_stdout = is_alignstats and (out_slot is None or out_slot.is_stdio)
        extra: list[str] = []
        if streamed_slot is not None:
            paths[streamed_slot.number] = "-"
            if is_alignstats and not cmd.has_option("-j") and fmt in ("bam", "cram", "sam"):
                extra = ["-j", str(fmt)]  # stdin has no file name to guess the format from
        return ArgvPlan(
            argv=[*engine.argv, *cmd.render(paths, extra=extra)[1:]],
            outputs=out_paths,
            stdout_path=self.scratch.root / "stdout" if capture_stdout else None,
            # `-i -` passes the worker's own stdin through; otherwise the tool gets no terminal to read.
            inherit_stdin=any(slot.is_stdio for slot in cmd.inputs) and streamed_slot is None,
        )

    def _publish_outputs(
        self, cmd: ParsedCommand, engine: Engine, inputs: dict[int, Input], main: Input | None, plan: ArgvPlan
    ) -> None:
        provenance = self._provenance(cmd, engine, inputs)
        fix = (
            (main.display, main.info.size)
            if (cmd.profile.name == "alignstats" and main is not None)
            else None
        )
        for slot in cmd.outputs:
            produced = plan.outputs.get(slot.number)
            if produced is None:
                continue
            if not produced.exists():
                raise WorkerError(f"the tool exited 0 but did not write {slot.text} ({slot.option})")
            if fix is not None and slot.kind is Kind.REPORT:
                produced.write_bytes(rewrite_input_fields(produced.read_bytes(), name=fix[0], size=fix[1]))
            self._publish(produced, slot, provenance)
        if plan.stdout_path is not None and plan.stdout_path.exists():
            data = plan.stdout_path.read_bytes()
            if fix is not None and data:
                data = rewrite_input_fields(data, name=fix[0], size=fix[1])
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

    # -- inputs --------------------------------------------------------------------------------------
    @staticmethod
    def _main_slot(cmd: ParsedCommand) -> Slot | None:
        if cmd.profile.stream_option:
            return cmd.slot_for(cmd.profile.stream_option)
        found = [s for s in cmd.inputs if s.kind is Kind.ALIGNMENTS]
        return found[-1] if found else None

    def _resolve(self, loc: Location, display: str, what: str) -> Input:
        store = self.stores.for_location(loc)
        info = store.head(loc)
        path = store.local_path(loc)
        if info is None:
            if path is None:
                raise ObjectMissing(f"{what} {display} does not exist; check the bucket and key")
            if os.path.isdir(path):
                raise BadInput(f"{what} {display} is a directory, not a file")
            raise ObjectMissing(f"{what} {display} does not exist")
        if path is not None and not os.access(path, os.R_OK):
            raise AccessDenied(f"{what} {display} is not readable (permission denied)")
        return Input(loc, info, display, host_path=path, local_path=path)

    def _decide_stream(self, cmd: ParsedCommand, main_slot: Slot | None, main: Input | None) -> bool:
        mode = self.opts.mode
        possible = (
            main_slot is not None
            and main is not None
            and main.needs_fetch
            and cmd.profile.stream_option is not None
            and not cmd.has_option("-r")
            and not self.opts.index
        )
        if mode == "stream" and not possible:
            if cmd.has_option("-r"):
                raise UsageError(
                    "--stream is not possible with -r: region queries need the staged, indexed file"
                )
            if main is not None and not main.needs_fetch:
                self.log.info("stream_ignored", reason="the main input is a local file; it is read in place")
                return False
            raise UsageError(
                f"--stream is not possible for {os.path.basename(cmd.tool)} with these arguments"
            )
        return possible and mode != "stage"

    def _check_alignments(self, main: Input) -> tuple[checks.Format, checks.HeaderInfo]:
        assert self.scratch is not None
        store = self.stores.for_location(main.location)
        size = main.info.size
        head = store.read_range(main.location, 0, min(size, PROBE_BYTES))
        tail_bytes = min(size, checks.TAIL_BYTES)
        tail = store.read_range(main.location, -tail_bytes, tail_bytes)
        fmt = checks.detect_format(head)
        checks.check_eof(main.display, fmt, tail)
        if main.host_path is not None:
            return fmt, checks.read_header(main.display, main.host_path, fmt)
        probe = self.scratch.probe_path(0)
        length = len(head)
        while True:
            probe.write_bytes(head)
            try:
                return fmt, checks.read_header(main.display, probe, fmt)
            except BadInput:
                # A header larger than the probe looks unreadable: fetch more before concluding.
                if length >= size or length >= MAX_PROBE_BYTES:
                    raise
                length = min(size, length * 8, MAX_PROBE_BYTES)
                head = store.read_range(main.location, 0, length)

    def _companions(
        self, cmd: ParsedCommand, main_slot: Slot | None, main: Input | None, stream: bool
    ) -> list[Companion]:
        """Index of the main input (unless streamed) and the FASTA's .fai/.gzi when they must be placed."""
        out: list[Companion] = []
        if main is not None and main_slot is not None and not stream:
            if self.opts.index:
                try:
                    idx_loc = parse_location(self.opts.index)
                except LocationError as exc:
                    raise UsageError(f"--index: {exc}") from None
                suffix = idx_loc.suffix.lower()
                if suffix not in (".bai", ".csi", ".crai"):
                    suffix = ".crai" if main.location.name.lower().endswith(".cram") else ".bai"
                comp = self._resolve(idx_loc, self.opts.index, "index (--index)")
                out.append(Companion(main_slot.number, suffix, comp))
            elif main.needs_fetch and cmd.profile.name == "alignstats":
                found = self._find_companion(main)
                if found is not None:
                    out.append(Companion(main_slot.number, found[0], found[1]))
            if cmd.has_option("-r") and not out and not self._local_index_exists(main):
                raise BadInput(
                    f"{main.display}: -r needs an index next to it (.bai/.csi/.crai) or --index URI; "
                    "create one with alignbatch-index"
                )
        for slot in cmd.inputs:
            if slot.kind is not Kind.FASTA or slot.is_stdio:
                continue
            for suffix in fasta_companions(slot.location):
                comp_loc = slot.location.add_suffix(suffix)
                store = self.stores.for_location(comp_loc)
                info = store.head(comp_loc)
                if info is None:
                    raise BadInput(
                        f"{slot.text}: reference index {comp_loc} is missing; create it with samtools faidx"
                    )
                if store.local_path(comp_loc) is None:  # a local one already sits next to its FASTA
                    out.append(Companion(slot.number, suffix, Input(comp_loc, info, str(comp_loc))))
        return out

    def _find_companion(self, main: Input) -> tuple[str, Input] | None:
        for suffix, replace in companion_suffixes(Kind.ALIGNMENTS, main.location):
            loc = main.location.with_suffix(suffix) if replace else main.location.add_suffix(suffix)
            if loc == main.location:
                continue
            info = self.stores.for_location(loc).head(loc)
            if info is not None:
                return suffix, Input(loc, info, str(loc))
        return None

    def _local_index_exists(self, main: Input) -> bool:
        if main.needs_fetch:
            return False
        store = self.stores.for_location(main.location)
        for suffix, replace in companion_suffixes(Kind.ALIGNMENTS, main.location):
            loc = main.location.with_suffix(suffix) if replace else main.location.add_suffix(suffix)
            path = store.local_path(loc)
            if path is not None and os.path.exists(path):
                return True
        return False

    def _place_companions(self, inputs: dict[int, Input], companions: list[Companion]) -> None:
        """Put each companion at `<input's local path><suffix>`, where HTSlib looks for it."""
        assert self.scratch is not None
        for comp in companions:
            base = inputs[comp.attach_to]
            if base.local_path is None:
                continue
            if base.host_path is not None:
                # A local file whose companion lives elsewhere: link the file into scratch so the
                # companion can sit next to it without touching the user's directory.
                link = self.scratch.input_dir(comp.attach_to) / safe_name(base.location.name)
                if not link.exists():
                    link.symlink_to(os.path.abspath(base.host_path))
                base.local_path = str(link)
            target = Path(base.local_path + comp.suffix)
            if comp.input.host_path is None:
                self._download(comp.input, target)
            else:
                target.unlink(missing_ok=True)
                target.symlink_to(os.path.abspath(comp.input.host_path))

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

    # -- running the tool ----------------------------------------------------------------------------
    def _run_tool(
        self,
        engine: Engine,
        argv: list[str],
        streamed: Input | None,
        stdout_path: Path | None,
        inherit_stdin: bool = False,
    ) -> int:
        read_fd = write_fd = -1
        stream: StreamHandle | None = None
        stdout_fh = open(stdout_path, "wb") if stdout_path is not None else None  # noqa: SIM115
        expect = None
        if streamed is not None:
            expect = expectation_for(streamed.info, sse=streamed.info.sse, streaming=True)
            if expect.algorithm is None:
                self.log.warning("verify_size_only", uri=streamed.display, reason=expect.note)
            read_fd, write_fd = os.pipe()
            # A 1 MiB pipe instead of 64 KiB: fewer wake-ups of the tool and of the writer per MB.
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 1024 * 1024)
        self.log.info(
            "tool_start",
            engine=engine.name,
            engine_version=engine.version,
            engine_path=engine.path,
            argv=argv,
        )
        started = time.monotonic()
        stderr_tail: deque[str] = deque(maxlen=5)
        try:
            self.child = subprocess.Popen(
                argv,
                stdin=read_fd if read_fd >= 0 else (None if inherit_stdin else subprocess.DEVNULL),
                stdout=stdout_fh if stdout_fh is not None else None,
                stderr=subprocess.PIPE,
                close_fds=True,
            )
        except OSError as exc:
            raise UsageError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
        finally:
            if read_fd >= 0:
                os.close(read_fd)
            if stdout_fh is not None:
                stdout_fh.close()
        forwarder = threading.Thread(target=self._forward_stderr, args=(self.child, stderr_tail), daemon=True)
        forwarder.start()
        stream_error: WorkerError | None = None
        try:
            if streamed is not None and expect is not None:
                stream = self.transfers.start_stream(streamed.info, write_fd, expect)
                while True:
                    if stream.done():
                        break
                    if self.child.poll() is not None:
                        break
                    time.sleep(0.05)
                os.close(write_fd)  # EOF for the tool (or EPIPE for a download still writing)
                write_fd = -1
            rc = self._wait_child()
            if stream is not None:
                if rc != 0 and not stream.done() and stream.remaining > _drain_limit():
                    # The tool failed early and too much is left to check whether the bytes it saw
                    # were intact: its own exit code stands.
                    stream.cancel()
                else:
                    try:
                        self._record(stream.finish())
                    except WorkerError as exc:
                        stream_error = exc
        finally:
            if write_fd >= 0:
                os.close(write_fd)
        forwarder.join(timeout=5)
        seconds = time.monotonic() - started
        code = rc if rc >= 0 else 128 - rc  # killed by signal N → 128+N, as a shell reports it
        self.log.info(
            "tool_run",
            engine=engine.name,
            engine_version=engine.version,
            exit_code=code,
            seconds=round(seconds, 3),
            # Largest child so far: the tool (the version probe before it is tiny).
            tool_max_rss_mb=round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
            stderr_tail=list(stderr_tail),
        )
        if stream_error is not None:
            # Corrupted or failed transfer: what the tool saw was not the object, whatever it said.
            raise stream_error
        return code

    def _wait_child(self) -> int:
        assert self.child is not None
        while True:
            try:
                return self.child.wait(timeout=0.2)  # short waits keep signal handling prompt
            except subprocess.TimeoutExpired:
                continue

    def _forward_stderr(self, child: subprocess.Popen[bytes], tail: deque[str]) -> None:
        assert child.stderr is not None
        for raw in child.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                tail.append(line)
                self.log.info("tool_stderr", line=line)

    # -- outputs -------------------------------------------------------------------------------------
    def _provenance(self, cmd: ParsedCommand, engine: Engine, inputs: dict[int, Input]) -> dict[str, str]:
        """S3 user metadata (ASCII only, 2 KB total): which inputs, tool and worker produced an output."""
        items = [
            f"{urllib.parse.quote(str(i.location), safe=':/')}#{i.info.etag}"
            for _, i in sorted(inputs.items())
        ]
        joined = ""
        for n, item in enumerate(items):
            candidate = item if not joined else f"{joined};{item}"
            if len(candidate) > METADATA_LIMIT - 400:
                joined += f";...(+{len(items) - n} more)"
                break
            joined = candidate
        meta = {
            "alignbatch-inputs": joined,
            "alignbatch-tool": os.path.basename(cmd.tool),
            "alignbatch-engine": engine.name,
            "alignbatch-engine-version": _ascii(engine.version or "unknown"),
            "alignbatch-worker-version": __version__,
        }
        if self.opts.job_id:
            meta["alignbatch-job-id"] = _ascii(self.opts.job_id)
            meta["alignbatch-job-attempt"] = _ascii(self.opts.attempt or "")
        return meta

    def _publish(self, produced: Path, slot: Slot, provenance: dict[str, str]) -> None:
        dest_path = self.stores.for_location(slot.location).local_path(slot.location)
        if dest_path is None:
            content_type = "application/json" if slot.kind is Kind.REPORT else "application/octet-stream"
            result = self.transfers.upload(
                produced, slot.location, metadata=provenance, content_type=content_type
            )
        else:
            try:
                result = copy_local(produced, Path(dest_path))
            except OSError as exc:
                raise translate_error(exc, slot.location, "write") from None
        self._record(result)


def _drain_limit() -> int:
    """After a tool failure, how many unread streamed bytes to still fetch and hash to tell a corrupted
    transfer (retryable) from bad data (ALIGNBATCH_STREAM_DRAIN_MAX_MIB, default 4 GiB)."""
    try:
        return int(os.environ.get("ALIGNBATCH_STREAM_DRAIN_MAX_MIB", "4096")) * 1024 * 1024
    except ValueError:
        return 4096 * 1024 * 1024


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def describe_roles(cmd: ParsedCommand) -> list[dict[str, str]]:
    """For logs: each file argument and its role."""
    return [
        {"option": s.option, "uri": s.text, "role": s.role.value, "kind": s.kind.value} for s in cmd.slots
    ]


__all__ = ["Input", "Role", "RunSummary", "TransientIOError", "WorkerOptions", "WorkerRun", "describe_roles"]
