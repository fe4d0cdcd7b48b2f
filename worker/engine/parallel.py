"""Several cores for one indexed BAM: contigs processed in parallel, merged in file order.

Each contig (and the unplaced '*' records) is one piece: its records are read straight from the file
between the index's virtual offsets (ranges.py) into a fresh `Engine`, so each piece has its own
accumulators and depth array, exactly like a part of a split run (run.compute_part). The pieces' results
are merged in file order, which `Accumulators.merge` needs for the Q9 stale word; the report is the same
bytes as a serial run (tests/integration/test_engine_parallel.py).

With the numba JIT kernels threads are enough: BGZF inflate (libdeflate/zlib through ctypes) and the
kernels release the GIL. The ahead-of-time kernels (aot.py) keep it, so with them the pieces run in a
forked process pool (cheap: nothing but numpy to inherit). ALIGNBATCH_ENGINE_POOL=threads|processes
overrides the choice, for measuring one against the other.

How many cores: ALIGNBATCH_ENGINE_CPUS (budget.py), which the worker sets from the job's vCPUs
(worker/cpus.py). Unset or 1 means the serial run. It never changes what -p and -P mean (the tool's
options).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import BrokenExecutor, Executor, Future, ThreadPoolExecutor

from worker.engine import kernel as k
from worker.engine.accumulators import Accumulators
from worker.engine.bamindex import BadIndexError, index_path, read_index
from worker.engine.engine import Engine, EngineConfig
from worker.engine.errors import BadInputError, WorkerLostError
from worker.engine.ranges import has_eof_block, range_chunks
from worker.engine.shardplan import Piece, pieces_from_index
from worker.engine.source import Header, InputFile, bgzf_errors

POOL_ENV = "ALIGNBATCH_ENGINE_POOL"


def plan_pieces(inp: InputFile, unplaced: bool = True) -> tuple[list[Piece] | None, str]:
    """The pieces of an indexed local BAM in file order, or (None, why not)."""
    if inp.path == "-" or inp.content != "bam":
        return None, "not a BAM file on local disk (stdin, SAM or CRAM read through HTSlib)"
    ipath = index_path(inp.path)
    if ipath is None:
        return None, "no .bai/.csi index next to the BAM"
    if inp.header is None:
        return None, "no header"
    try:
        index = read_index(ipath, len(inp.header.lengths))
    except (BadIndexError, OSError, ValueError) as exc:
        return None, f"index unusable ({exc})"
    if not has_eof_block(inp.path):
        return None, "no BGZF end-of-file block (the serial reader gives the exact error)"
    return pieces_from_index(index, range(len(inp.header.lengths)), unplaced)


def run_piece(config: EngineConfig, header: Header, path: str, piece: Piece, threads: int) -> Accumulators:
    """One piece through a fresh engine (its own depth array), checked against the index's count."""
    engine = Engine(config, header, path, threads=threads)
    engine.record_base = piece.first_record
    engine.feed(bgzf_errors(path, range_chunks(path, piece.begin, piece.end)))
    acc = engine.finish()
    if piece.records is not None and acc.count(k.C_TOTAL) != piece.records:
        where = "the unplaced records" if piece.tid is None else f"contig {header.names[piece.tid]}"
        raise BadInputError(
            path,
            f"the index promises {piece.records} records for {where}, the file holds {acc.count(k.C_TOTAL)}",
            "the index is stale: re-create it with samtools index",
        )
    return acc


def pool_kind(environ: dict[str, str] | None = None) -> str:
    """'threads' or 'processes': ALIGNBATCH_ENGINE_POOL, else whatever suits the loaded kernels."""
    chosen = (os.environ if environ is None else environ).get(POOL_ENV, "")
    if chosen in ("threads", "processes"):
        return chosen
    return "threads" if k.RELEASES_GIL else "processes"


def _executor(cpus: int) -> Executor:
    if pool_kind() == "processes":
        import multiprocessing  # here: 6 ms of imports a serial run or a shard child never needs
        from concurrent.futures import ProcessPoolExecutor

        # fork: children inherit the loaded kernels instead of compiling/loading them again; each dies
        # with the engine (the worker stops its whole process group, but not every killer does)
        return ProcessPoolExecutor(
            max_workers=cpus,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
        )
    return ThreadPoolExecutor(max_workers=cpus, thread_name_prefix="engine-piece")


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """In a pool worker: SIGKILL when the engine process dies (Linux prctl; elsewhere nothing)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the call took effect
        os._exit(1)


def run_pieces(
    config: EngineConfig,
    header: Header,
    path: str,
    pieces: Sequence[Piece],
    cpus: int,
    threads: int = 1,
    runner: Callable[..., Accumulators] = run_piece,
) -> list[Accumulators]:
    """Every piece's accumulators, in the order given; the first failing piece (in that order) raises."""
    # largest first keeps the cores busy to the end; results are still taken in file order
    order = sorted(range(len(pieces)), key=lambda i: -(pieces[i].records or 0))
    with _executor(cpus) as pool:
        futures: dict[int, Future[Accumulators]] = {
            i: pool.submit(runner, config, header, path, pieces[i], threads) for i in order
        }
        try:
            return [futures[i].result() for i in range(len(pieces))]
        except BrokenExecutor:
            raise WorkerLostError(path) from None
        finally:
            for fut in futures.values():
                fut.cancel()


def merge_in_order(parts: Sequence[Accumulators]) -> Accumulators:
    merged = Accumulators()
    for part in parts:
        merged.merge(part)
    return merged
