"""The engine's two kinds of failure.

`ToolError`: a situation where alignstats v0.11 itself stops; we print its exact stderr lines and use its
exit code (1), so scripts that parse the real tool's behaviour keep working.
`BadInputError`: where alignbatch deliberately differs from alignstats (damaged BAM, a BED line that would
crash it): one clear line naming the file and the fix, exit 65 (ExitCode.BAD_INPUT).
"""

from __future__ import annotations

from core.exitcodes import ExitCode


def _rebuild(cls: type[EngineError], args: tuple[object, ...], state: dict[str, object]) -> EngineError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class EngineError(Exception):
    exit_code: int = 1

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)

    def __reduce__(self) -> tuple[object, ...]:
        # Rebuilt from its attributes, not by calling __init__ again with `args`: the subclasses take
        # other arguments, and an error raised in a process-pool worker (parallel.py) must arrive in the
        # parent as itself, or concurrent.futures reports the pool broken and exit 65 becomes 70.
        return (_rebuild, (type(self), self.args, self.__dict__.copy()))


class ToolError(EngineError):
    """alignstats-compatible error: its messages, exit code 1."""

    exit_code = 1


class BadInputError(EngineError):
    """Damaged or unsafe input that alignstats would silently mis-report or crash on."""

    exit_code = int(ExitCode.BAD_INPUT)

    def __init__(self, path: str, problem: str, fix: str) -> None:
        super().__init__(f"[alignbatch-alignstats ERROR] {path}: {problem}; {fix}")
        self.path = path
        self.problem = problem
        self.fix = fix


class ShardError(EngineError):
    """A shard or merge request the engine cannot honour (options it cannot split, parts that do not
    belong together): one line with the reason, exit 64 (ExitCode.USAGE); the caller runs one job."""

    exit_code = int(ExitCode.USAGE)

    def __init__(self, reason: str) -> None:
        super().__init__(f"[alignbatch-alignstats ERROR] cannot shard: {reason}")
        self.reason = reason


class WorkerLostError(EngineError):
    """A process of the engine's own pool died under it (killed by the system: out of memory, most
    likely): the exit status a killed single process would have (137), so the job is retried as one."""

    exit_code = 137

    def __init__(self, path: str) -> None:
        super().__init__(
            f"[alignbatch-alignstats ERROR] {path}: a worker process of the engine was killed (out of "
            "memory?); give the job more memory, or run it on one core (ALIGNBATCH_ENGINE_CPUS=1)"
        )
        self.path = path
