#!/bin/sh
# Entrypoint of the worker image: alignbatch-worker. Job commands from the controller (and the job
# definitions' default) spell the program out - "alignbatch-worker --stage -- alignstats ..." - so the same
# command also runs outside a container; accept it with or without that first word.
set -eu
if [ "${1:-}" = "alignbatch-worker" ]; then
  shift
fi
exec alignbatch-worker "$@"
