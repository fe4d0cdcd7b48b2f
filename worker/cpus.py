"""How many cores the built-in engine may use in this job: the Batch job's vCPUs.

AWS Batch does not pin a container to CPUs (os.cpu_count() is the host's); it sets a CPU quota from the
job's vCPUs. So, first match wins:
1. ALIGNBATCH_ENGINE_CPUS already set (an operator's override, passed through untouched);
2. ALIGNBATCH_JOB_VCPUS, for a controller that passes the job's vCPUs in the container environment;
3. the cgroup CPU quota (cgroup v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us), rounded up;
4. the CPUs this process may run on (sched_getaffinity).
The engine reads ALIGNBATCH_ENGINE_CPUS (worker/engine/budget.py): contig-parallel pieces and its inflate
threads; -p / -P keep the tool's meaning.

The same environment gets OPENBLAS_NUM_THREADS=1 unless set: the engine does no linear algebra, but
numpy's OpenBLAS starts a spinning thread per core at import, ~0.05 s of CPU per process, which a
fan-out pays once per child. It has to be in the environment before the tool starts (numpy is
imported with the engine's first modules).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

from worker.engine.budget import CPUS_ENV as ENGINE_CPUS
from worker.engine.budget import stated_cpus

JOB_VCPUS = "ALIGNBATCH_JOB_VCPUS"
BLAS_THREADS = "OPENBLAS_NUM_THREADS"


def _positive(text: str | None) -> int | None:
    try:
        value = int(text or "")
    except ValueError:
        return None
    return value if value > 0 else None


def cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """CPUs allowed by the cgroup quota, rounded up; None when unlimited or unreadable."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        q = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        p = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return max(1, math.ceil(q / p)) if q > 0 and p > 0 else None


def job_cpus(environ: Mapping[str, str], root: Path = Path("/sys/fs/cgroup")) -> int:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for candidate in (_positive(environ.get(JOB_VCPUS)), cgroup_quota(root)):
        if candidate is not None:
            return min(candidate, affinity)
    return affinity


def with_engine_cpus(env: dict[str, str], root: Path = Path("/sys/fs/cgroup")) -> dict[str, str]:
    """The tool's environment with ALIGNBATCH_ENGINE_CPUS and OPENBLAS_NUM_THREADS set (each kept if
    the operator set it)."""
    if stated_cpus(env) is None:  # the engine's own reading of it (worker/engine/budget.py)
        env[ENGINE_CPUS] = str(job_cpus(env, root))
    env.setdefault(BLAS_THREADS, "1")
    return env
