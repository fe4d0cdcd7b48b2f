#!/bin/sh
# Entrypoint of the worker image: alignbatch-worker. Job commands from the controller (and the job
# definitions' default) spell the program out - "alignbatch-worker --stage -- alignstats ..." - so the same
# command also runs outside a container; accept it with or without that first word.
#
# numba's cache: the image ships the built-in engine's kernels compiled at build time
# (/opt/alignbatch/numba-cache), but numba only uses a cache directory it can write to and the root file
# system is read-only in Batch. So the seed is copied once per host and image into the scratch volume
# (atomically: a complete copy is renamed into place, concurrent jobs keep the first) and NUMBA_CACHE_DIR
# points there. If that is impossible (scratch full or not writable) NUMBA_CACHE_DIR stays unset; only the
# built-in engine needs numba, and the worker reports the scratch problem itself.
set -eu

seed=/opt/alignbatch/numba-cache
if [ -z "${NUMBA_CACHE_DIR:-}" ] && [ -d "$seed" ] && [ -r "$seed.id" ]; then
  base="${ALIGNBATCH_SCRATCH:-/scratch}/.alignbatch-numba"
  dest="$base/$(cat "$seed.id")"
  if [ ! -d "$dest" ]; then
    tmp=""
    if mkdir -p "$base" 2>/dev/null && tmp=$(mktemp -d "$base/.seed.XXXXXX" 2>/dev/null) \
      && cp -R "$seed/." "$tmp/" 2>/dev/null && mv -T "$tmp" "$dest" 2>/dev/null; then
      tmp=""
    fi
    [ -z "$tmp" ] || rm -rf "$tmp"
  fi
  if [ -d "$dest" ]; then
    NUMBA_CACHE_DIR="$dest"
    export NUMBA_CACHE_DIR
  fi
fi

if [ "${1:-}" = "alignbatch-worker" ]; then
  shift
fi
exec alignbatch-worker "$@"
