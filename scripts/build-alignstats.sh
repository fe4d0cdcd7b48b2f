#!/usr/bin/env bash
# Builds the real alignstats v0.11 from the vendored source tarball, for the differential tests that use it
# as an oracle for the built-in engine (tests/support/oracle.py calls this script). It is never shipped or
# run in production; the engine is our own code.
#
#   scripts/build-alignstats.sh [DEST]      (default DEST: .tools/alignstats)
#
# Produces DEST/alignstats (./configure, as golden/COMMANDS.txt's 'alignstats') and DEST/alignstats-mt
# (--enable-multithreading, for -p). Needs gcc, make, autoconf and HTSlib headers (Debian 12: libhts-dev,
# HTSlib 1.16 - the golden reports were made against it); with root and apt-get it installs what is missing.
# Tarball: $ALIGNSTATS_TARBALL, or ../shared/vendor/ beside the checkout, or /work/shared/vendor/.
# Idempotent: a DEST whose stamp names this tarball's sha256 is left alone. Exit 0 built or already there,
# 3 when the tarball or the build tools are missing (the caller skips), anything else a real build failure.
set -euo pipefail
cd "$(dirname "$0")/.."

SHA256=f3514eb8343db378edb054c31afe9b107a37a8b1598717f68caf846b02a6b5df
NAME=alignstats-0.11-2e4255d.tar.gz
dest=${1:-.tools/alignstats}

tarball=${ALIGNSTATS_TARBALL:-}
if [ -z "$tarball" ]; then
  for cand in "../shared/vendor/$NAME" "$(pwd)/../../shared/vendor/$NAME" "/work/shared/vendor/$NAME"; do
    if [ -f "$cand" ]; then tarball=$cand; break; fi
  done
fi
if [ -z "$tarball" ] || [ ! -f "$tarball" ]; then
  echo "build-alignstats: source tarball $NAME not found (set ALIGNSTATS_TARBALL)" >&2
  exit 3
fi
# A changed tarball would silently change what "the real tool" means for every differential test.
got=$(sha256sum "$tarball" | cut -d' ' -f1)
if [ "$got" != "$SHA256" ]; then
  echo "build-alignstats: $tarball has sha256 $got, expected $SHA256" >&2
  exit 2
fi

if [ -x "$dest/alignstats" ] && [ -x "$dest/alignstats-mt" ] && [ "$(cat "$dest/.stamp" 2>/dev/null)" = "$SHA256" ]; then
  exit 0
fi

have_tools() {
  command -v gcc >/dev/null && command -v make >/dev/null && command -v autoconf >/dev/null \
    && [ -f /usr/include/htslib/sam.h ]
}
if ! have_tools; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "build-alignstats: apt-get install libhts-dev autoconf gcc make" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libhts-dev autoconf gcc make libc6-dev >/dev/null
  fi
  if ! have_tools; then
    echo "build-alignstats: needs gcc, make, autoconf and libhts-dev (HTSlib headers)" >&2
    exit 3
  fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
build() {  # build <subdir> <configure args...>
  local dir=$work/$1
  shift
  mkdir -p "$dir"
  tar -xzf "$tarball" -C "$dir" --strip-components=1
  # autoconf only warns about obsolete macros in configure.ac; the output is noise for a test log.
  (cd "$dir" && autoconf 2>/dev/null && ./configure -q "$@" >/dev/null && make -s >/dev/null 2>"$dir/make.log") \
    || { cat "$dir/make.log" >&2 2>/dev/null; return 1; }
}
build st
build mt --enable-multithreading
mkdir -p "$dest"
install -m 0755 "$work/st/alignstats" "$dest/alignstats"
install -m 0755 "$work/mt/alignstats" "$dest/alignstats-mt"
echo "$SHA256" >"$dest/.stamp"
echo "build-alignstats: built $dest/alignstats and $dest/alignstats-mt" >&2
