#!/usr/bin/env bash
# Make a Debian 12 (bookworm) base image for building the worker image where no registry can be reached:
# `debootstrap --variant=minbase bookworm` from the Debian mirror, trimmed like debian:12-slim (no apt
# lists, no downloaded .debs), then `podman import`. Prints the image name.
#
#   scripts/make-base-image.sh [IMAGE]        (default localhost/alignbatch-base:bookworm-minbase)
#
# Cached twice: an image of that name already in podman's store is used as it is, and the root file
# system tarball is kept in $ALIGNBATCH_IMAGE_CACHE (default /var/tmp/alignbatch-images when writable,
# else .tools/images), so a second machine run or a wiped store only re-imports (seconds, not minutes).
# Needs root (debootstrap), debootstrap and podman (scripts/install-tools.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."

image="${1:-localhost/alignbatch-base:bookworm-minbase}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if [ -n "${ALIGNBATCH_IMAGE_CACHE:-}" ]; then
  cache="$ALIGNBATCH_IMAGE_CACHE"
elif [ -d /var/tmp ] && [ -w /var/tmp ]; then
  cache=/var/tmp/alignbatch-images
else
  cache="$PWD/.tools/images"
fi
tarball="$cache/bookworm-minbase.tar"

if podman image exists "$image"; then
  echo "$image"
  exit 0
fi

if [ ! -s "$tarball" ]; then
  [ "$(id -u)" = 0 ] || { echo "make-base-image: debootstrap needs root" >&2; exit 77; }
  command -v debootstrap >/dev/null || { echo "make-base-image: debootstrap not installed" >&2; exit 69; }
  mkdir -p "$cache"
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$root" "$tarball.tmp"' EXIT
  echo "make-base-image: debootstrap --variant=minbase bookworm ($mirror)" >&2
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
    tail -n 20 "$cache/debootstrap.log" >&2
    exit 75
  }
  # The same sources as debian:12-slim (updates and security too), then what slim leaves out.
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
    "$root"/var/log/* "$root"/tmp/*
  tar --numeric-owner --xattrs -C "$root" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi

podman import --quiet --change 'CMD ["bash"]' "$tarball" "$image" >/dev/null
echo "$image"
