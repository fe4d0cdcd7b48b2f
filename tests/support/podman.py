"""The worker image for real: built with podman from deploy/docker/Dockerfile on a debootstrapped bookworm
base, and run with the settings of a Batch job definition read from deploy/cloudformation/batch.yaml.

Caching keeps `make test` bounded: the base image's root file system tarball, the wheelhouse and every
built image live in podman's store and in `cache_dir()` (/var/tmp/alignbatch-images when writable); an
image is tagged by a hash of everything it is built from, so an unchanged tree reuses it, and a changed
one rebuilds only the layers after the change. Tests skip with the reason when podman cannot be used
(not root, not installed: scripts/install-tools.sh installs it as root).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = ROOT / "tests" / "support" / "containers.conf"
BATCH_TEMPLATE = ROOT / "deploy" / "cloudformation" / "batch.yaml"
VENDOR_TARBALL = ROOT.parent / "shared" / "vendor" / "alignstats-0.11-2e4255d.tar.gz"
IMAGE_REPO = "localhost/alignbatch-worker"
# What the image is built from: a change to any of these makes a new test image.
IMAGE_INPUTS = ("setup.cfg", "pyproject.toml", "README.md", "core", "worker", "controller", "deploy/docker")


def podman_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF), **extra}


def cache_dir() -> Path:
    """Same choice as scripts/make-base-image.sh."""
    if os.environ.get("ALIGNBATCH_IMAGE_CACHE"):
        path = Path(os.environ["ALIGNBATCH_IMAGE_CACHE"])
    elif os.access("/var/tmp", os.W_OK):
        path = Path("/var/tmp/alignbatch-images")
    else:
        path = ROOT / ".tools" / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            ["podman", *args], capture_output=True, text=True, timeout=timeout, env=podman_env(), check=False
        )
    except subprocess.TimeoutExpired as exc:
        if check:
            raise
        return subprocess.CompletedProcess(exc.cmd, 124, str(exc.stdout or ""), str(exc.stderr or ""))
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc


def require_podman() -> None:
    if os.geteuid() != 0:
        pytest.skip("the image tests need root (rootful podman, debootstrap); run them as root or in CI")
    for tool in ("podman", "debootstrap", "runc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/install-tools.sh installs it as root)")
    proc = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False, timeout=60)
    if proc.returncode != 0:
        pytest.skip(f"podman cannot run here: {proc.stderr.strip()[-300:]}")


def _inputs_hash() -> str:
    digest = hashlib.sha256()
    for entry in IMAGE_INPUTS:
        base = ROOT / entry
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            rel = path.relative_to(ROOT).as_posix()
            # the local ahead-of-time kernel builds are not image inputs (the image makes its own)
            if "__pycache__" in rel or "/_aot/" in rel or rel.endswith((".pyc", ".whl", ".tar.gz")):
                continue
            digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def wheelhouse() -> Path:
    """alignbatch's dependencies (and the build backend) as wheels, made with this interpreter's pip: the
    image build then needs no package index (the machine's TLS-intercepting proxy is not trusted inside
    the build). Cached by the dependency declaration."""
    key = hashlib.sha256((ROOT / "setup.cfg").read_bytes() + (ROOT / "pyproject.toml").read_bytes())
    target = cache_dir() / f"wheels-{key.hexdigest()[:12]}"
    if (target / ".complete").exists():
        return target
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "-w", str(tmp), str(ROOT)], check=True, timeout=900, cwd=ROOT)
    subprocess.run([*pip, "download", "-d", str(tmp), "setuptools>=68", "wheel"], check=True, timeout=600)
    for own in tmp.glob("alignbatch-*.whl"):  # the image builds alignbatch from its own copy of the tree
        own.unlink()
    (tmp / ".complete").write_text("")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def base_image() -> str:
    """The debootstrapped bookworm base (scripts/make-base-image.sh: cached tarball, then podman import)."""
    base = subprocess.run(
        ["bash", str(ROOT / "scripts" / "make-base-image.sh")],
        capture_output=True, text=True, timeout=900, env=podman_env(), check=False,
    )  # fmt: skip
    assert base.returncode == 0, f"make-base-image.sh failed:\n{base.stderr[-3000:]}"
    return base.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class WorkerImage:
    name: str
    build_seconds: float | None  # None: reused from an earlier run
    size_bytes: int


def worker_image() -> WorkerImage:
    """Build (or reuse) the worker image exactly as deploy/build-image.sh builds it, from the vendored
    alignstats tarball and the wheelhouse, on the debootstrapped base."""
    require_podman()
    tag = f"test-{_inputs_hash()}"
    name = f"{IMAGE_REPO}:{tag}"
    seconds: float | None = None
    if podman("image", "exists", name, check=False).returncode != 0:
        if not VENDOR_TARBALL.is_file():
            pytest.skip(f"{VENDOR_TARBALL} is absent and GitHub cannot be reached from here")
        started = time.monotonic()
        base = base_image()
        log = cache_dir() / f"build-{tag}.log"
        with open(log, "w") as fh:
            proc = subprocess.run(
                [
                    "bash", str(ROOT / "deploy" / "build-image.sh"), "--no-push", "--tag", tag,
                    "--base-image", base,
                    "--alignstats-tarball", str(VENDOR_TARBALL), "--wheelhouse", str(wheelhouse()),
                    "--", "--network", "host",
                ],
                stdout=fh, stderr=subprocess.STDOUT, timeout=1500, env=podman_env(), cwd=ROOT, check=False,
            )  # fmt: skip
        assert proc.returncode == 0, f"image build failed (log {log}):\n{log.read_text()[-4000:]}"
        seconds = time.monotonic() - started
        _remove_older_test_images(keep=name)
    size = int(podman("image", "inspect", name, "--format", "{{.Size}}").stdout.strip())
    return WorkerImage(name, seconds, size)


def _remove_older_test_images(keep: str) -> None:
    """Older test images (one per tree the suite ran on) go once a day old: never one a concurrent run on
    the same machine, e.g. another checkout's, may still be using."""
    listed = podman(
        "images", "--filter", f"reference={IMAGE_REPO}", "--filter", "until=24h",
        "--format", "{{.Repository}}:{{.Tag}}", check=False,
    ).stdout  # fmt: skip
    for ref in listed.split():
        if ref != keep and ":test-" in ref:
            podman("rmi", ref, check=False)


# -- a Batch job definition as `podman run` arguments ------------------------------------------------------
def job_container(definition: str = "AlignstatsJobDefinition") -> dict[str, Any]:
    from cfnlint.decode import cfn_yaml

    template = cfn_yaml.load(str(BATCH_TEMPLATE))
    return dict(template["Resources"][definition]["Properties"]["ContainerProperties"])


def _resolve(value: Any, imports: Mapping[str, str], region: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and set(value) == {"Ref"} and value["Ref"] == "AWS::Region":
        return region
    if isinstance(value, Mapping) and set(value) == {"Fn::ImportValue"}:
        export = str(value["Fn::ImportValue"]["Fn::Sub"]).split("}-", 1)[1]
        return imports[export]
    raise AssertionError(f"cannot resolve {value!r} for a local run")


def batch_run_args(
    container: Mapping[str, Any],
    *,
    image: str,
    name: str,
    host_volumes: Mapping[str, Path],
    imports: Mapping[str, str],
    extra_env: Mapping[str, str],
    command: list[str],
    region: str = "us-east-1",
) -> list[str]:
    """`podman run` with what the ECS agent gives a Batch job of this definition: the user, a read-only
    root file system (and, as ECS, no tmpfs on /tmp: `--read-only-tmpfs=false`), the host volumes at their
    mount points, the environment, an init process, vCPU and memory; host networking stands in for the
    instance's network and the credentials endpoint. `command` is the containerOverrides command."""
    args = ["run", "--name", name, "--network", "host", "--pull", "never"]
    if container.get("User"):
        args += ["--user", str(container["User"])]
    if container.get("ReadonlyRootFilesystem"):
        args += ["--read-only", "--read-only-tmpfs=false"]
    assert not container.get("Privileged"), "the worker must not need a privileged container"
    if container.get("LinuxParameters", {}).get("InitProcessEnabled"):
        args.append("--init")
    volumes = {v["Name"]: v for v in container.get("Volumes", [])}
    for mount in container.get("MountPoints", []):
        source = volumes[mount["SourceVolume"]]["Host"]["SourcePath"]
        host = host_volumes[source]
        args += ["-v", f"{host}:{mount['ContainerPath']}:{'ro' if mount.get('ReadOnly') else 'rw'}"]
    for req in container.get("ResourceRequirements", []):
        if req["Type"] == "VCPU":
            args += ["--cpus", str(req["Value"])]
        elif req["Type"] == "MEMORY":
            args += ["--memory", f"{req['Value']}m"]
    env = {e["Name"]: _resolve(e["Value"], imports, region) for e in container.get("Environment", [])}
    env.update(extra_env)
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    return [*args, image, *command]


def batch_scratch(tmp_path: Path) -> Path:
    """A host directory like the launch template's /scratch: owned by the image's user, mode 0750."""
    scratch = tmp_path / "host-scratch"
    scratch.mkdir()
    os.chown(scratch, 10001, 10001)
    scratch.chmod(0o750)
    return scratch
