"""How many CPUs the engine may use for one input: ALIGNBATCH_ENGINE_CPUS.

The worker sets it from the job's vCPUs (worker/cpus.py); an operator may set it by hand. Unset, the
engine runs its pieces serially (parallel.py) and sizes its inflate threads by the CPUs it may run on
(source.py). It never changes what -p and -P mean (the tool's options).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

CPUS_ENV = "ALIGNBATCH_ENGINE_CPUS"


def stated_cpus(environ: Mapping[str, str] | None = None) -> int | None:
    """The budget when one is stated (a positive integer), else None."""
    text = (os.environ if environ is None else environ).get(CPUS_ENV, "")
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 1 else None


def engine_cpus(environ: Mapping[str, str] | None = None) -> int:
    """Cores for contig-parallel work: the stated budget, default 1."""
    return stated_cpus(environ) or 1
