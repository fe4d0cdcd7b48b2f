"""Publishing outputs after the tool exited 0: the alignstats report's input fields rewritten, each
output uploaded (CRC64NVME, SSE, provenance metadata) or renamed into place, as its store allows.
"""

from __future__ import annotations

import os
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from core.errors import WorkerError
from core.objectstore import Stores
from core.s3client import translate_error
from core.version import __version__
from worker.argv import ArgvPlan
from worker.engines import Engine
from worker.inputs import Input
from worker.report import rewrite_input_fields
from worker.tools import Kind, ParsedCommand, Slot
from worker.transfer import TransferResult, Transfers, copy_local

METADATA_LIMIT = 1800  # S3 allows 2 KB of user metadata in total


class Publisher:
    """Puts the outputs of one run where the command said, each through its location's store."""

    def __init__(
        self,
        transfers: Transfers,
        stores: Stores,
        record: Callable[[TransferResult], None],
        *,
        job_id: str | None = None,
        attempt: str | None = None,
    ) -> None:
        self.transfers = transfers
        self.stores = stores
        self.record = record
        self.job_id = job_id
        self.attempt = attempt

    def publish_outputs(
        self,
        cmd: ParsedCommand,
        engine: Engine,
        inputs: dict[int, Input],
        main: Input | None,
        plan: ArgvPlan,
        *,
        report_input: tuple[str, int] | None = None,
    ) -> None:
        """`report_input`: the report's InputFileName/InputFileSize when the run has no main input to
        take them from (a fan-out merge: the name and size its parts recorded)."""
        provenance = self.provenance(cmd, engine, inputs)
        fix = report_input or (
            (main.report_name, main.info.size)
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
            self.publish(produced, slot, provenance)
        if plan.stdout_path is not None and plan.stdout_path.exists():
            data = plan.stdout_path.read_bytes()
            if fix is not None and data:
                data = rewrite_input_fields(data, name=fix[0], size=fix[1])
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

    def provenance(self, cmd: ParsedCommand, engine: Engine, inputs: dict[int, Input]) -> dict[str, str]:
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
        if self.job_id:
            meta["alignbatch-job-id"] = _ascii(self.job_id)
            meta["alignbatch-job-attempt"] = _ascii(self.attempt or "")
        return meta

    def publish(self, produced: Path, slot: Slot, provenance: dict[str, str]) -> None:
        dest_path = self.stores.for_location(slot.location).local_path(slot.location)
        if dest_path is None:
            json_kinds = (Kind.REPORT, Kind.PART)
            content_type = "application/json" if slot.kind in json_kinds else "application/octet-stream"
            result = self.transfers.upload(
                produced, slot.location, metadata=provenance, content_type=content_type
            )
        else:
            try:
                result = copy_local(produced, Path(dest_path))
            except OSError as exc:
                raise translate_error(exc, slot.location, "write") from None
        self.record(result)


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")
