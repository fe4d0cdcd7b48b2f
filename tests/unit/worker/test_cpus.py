"""The job's vCPUs for the built-in engine (worker/cpus.py)."""

from __future__ import annotations

import os
from pathlib import Path

from worker.cpus import BLAS_THREADS, ENGINE_CPUS, JOB_VCPUS, cgroup_quota, job_cpus, with_engine_cpus

AFFINITY = len(os.sched_getaffinity(0))


def test_cgroup_v2_quota_rounds_up(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota(tmp_path) is None


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(tmp_path) == 1


def test_order_of_sources(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert job_cpus({}, tmp_path) == 1
    assert job_cpus({JOB_VCPUS: "1"}, tmp_path / "none") == 1
    assert job_cpus({}, tmp_path / "none") == AFFINITY
    # never more than the CPUs we may run on
    assert job_cpus({JOB_VCPUS: "999"}, tmp_path) == AFFINITY


def test_operator_override_is_kept(tmp_path: Path) -> None:
    assert with_engine_cpus({ENGINE_CPUS: "7"}, tmp_path)[ENGINE_CPUS] == "7"
    assert with_engine_cpus({}, tmp_path / "none")[ENGINE_CPUS] == str(AFFINITY)


def test_one_blas_thread_unless_the_operator_chose(tmp_path: Path) -> None:
    assert with_engine_cpus({}, tmp_path)[BLAS_THREADS] == "1"
    assert with_engine_cpus({BLAS_THREADS: "4"}, tmp_path)[BLAS_THREADS] == "4"
