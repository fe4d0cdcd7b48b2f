#!/usr/bin/env bash
# Installs the non-Python tools the test suite drives for real: Debian packages (promtool, systemd-analyze;
# podman, runc, catatonit and debootstrap to build and run the worker image; libhts-dev and a compiler for
# the real alignstats; chromium for the QC pages) when we are root, and the PyPI-packaged checkers that want
# their own virtualenv (checkov) under .tools/.
# Idempotent: what is already there is left alone. Tests that need a tool which could not be installed skip
# with a message naming it, so a developer without root still runs everything else.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_pkgs=()
command -v promtool >/dev/null 2>&1 || apt_pkgs+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || apt_pkgs+=(systemd)
# tests/deploy/test_image_run.py: the worker image built on a debootstrapped base and run as Batch runs it
# (--init needs catatonit; runc because these machines' cgroups suit it, see tests/support/containers.conf).
command -v podman >/dev/null 2>&1 || apt_pkgs+=(podman)
command -v runc >/dev/null 2>&1 || apt_pkgs+=(runc)
[ -x /usr/libexec/podman/catatonit ] || apt_pkgs+=(catatonit)
command -v debootstrap >/dev/null 2>&1 || apt_pkgs+=(debootstrap)
# The real alignstats, built from ../shared/vendor against Debian 12's HTSlib for the oracle tests.
[ -f /usr/include/htslib/sam.h ] || apt_pkgs+=(libhts-dev)
command -v autoconf >/dev/null 2>&1 || apt_pkgs+=(autoconf)
command -v gcc >/dev/null 2>&1 || apt_pkgs+=(gcc)
[ -f /usr/include/stdio.h ] || apt_pkgs+=(libc6-dev)  # only a Recommends of gcc
# numba.pycc, which compiles the engine's kernels ahead of time (make's AOT_BUILD): g++ for its compiler
# probe and Python's headers for the wrapper it compiles.
command -v g++ >/dev/null 2>&1 || apt_pkgs+=(g++)
py_include=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null || true)
[ -n "$py_include" ] && [ -f "$py_include/Python.h" ] || apt_pkgs+=(python3-dev)
command -v make >/dev/null 2>&1 || apt_pkgs+=(make)
# The QC batch report and the MultiQC page are looked at in a real headless browser.
command -v chromium >/dev/null 2>&1 || apt_pkgs+=(chromium)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-tools: apt-get install ${apt_pkgs[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
  else
    echo "install-tools: not root; tests needing ${apt_pkgs[*]} will skip" >&2
  fi
fi

# checkov pins many libraries of its own; keep it out of the project's virtualenv. Its version is pinned:
# a newer checkov brings new checks, and the templates' skips (each with its reason) are reviewed per version.
CHECKOV_VERSION=3.3.30
mkdir -p .tools/bin
installed=$(.tools/checkov/bin/python -m pip show checkov 2>/dev/null || true)
if ! grep -qx "Version: ${CHECKOV_VERSION}" <<<"$installed"; then
  echo "install-tools: checkov ${CHECKOV_VERSION} into .tools/checkov"
  python3 -m venv .tools/checkov
  .tools/checkov/bin/python -m pip install --quiet --upgrade pip
  .tools/checkov/bin/python -m pip install --quiet "checkov==${CHECKOV_VERSION}"
fi
ln -sf ../checkov/bin/checkov .tools/bin/checkov
