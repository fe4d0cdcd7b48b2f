#!/usr/bin/env bash
# Build the worker image (deploy/docker/Dockerfile) and push it to the storage stack's ECR repository.
#
#   deploy/build-image.sh [--stack-prefix alignbatch] [--tag TAG] [--base-image IMAGE] [--no-push]
#                         [--alignstats-tarball FILE] [--wheelhouse DIR] [--platform linux/amd64]
#                         [-- EXTRA BUILD OPTIONS]
#
# TAG defaults to <package version>-<git commit>; the repository's tags are immutable, so a tag that already
# exists is refused rather than overwritten. Prints the tag to pass to the Batch stack as ImageTag.
# --alignstats-tarball builds alignstats from a `git archive` of v0.11 instead of fetching it from GitHub
# (verified against the same git tree id); --wheelhouse installs Python packages from DIR's wheels, with no
# package index. Needs docker or podman (CONTAINER_ENGINE picks one), the AWS CLI v2 and credentials to push.
set -euo pipefail
cd "$(dirname "$0")/.."

stack_prefix=alignbatch
tag=""
base_image=""
push=1
tarball=""
wheelhouse=""
# Batch's compute environments are x86_64 (m6i, m6a, r6i, r6a, c6i): build for that even on an arm64 laptop.
platform=linux/amd64
engine="${CONTAINER_ENGINE:-}"
extra=()

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --stack-prefix) stack_prefix="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --base-image) base_image="$2"; shift 2 ;;
    --alignstats-tarball) tarball="$2"; shift 2 ;;
    --wheelhouse) wheelhouse="$2"; shift 2 ;;
    --platform) platform="$2"; shift 2 ;;
    --no-push) push=0; shift ;;
    -h|--help) usage 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "build-image.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -z "$engine" ]; then
  # docker only when its daemon answers (a docker CLI without an engine is common on CI machines).
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then engine=docker
  elif command -v podman >/dev/null 2>&1; then engine=podman
  else echo "build-image.sh: no usable docker engine and no podman (set CONTAINER_ENGINE)" >&2; exit 69
  fi
fi
command -v "$engine" >/dev/null || { echo "build-image.sh: $engine not found (set CONTAINER_ENGINE)" >&2; exit 69; }
[ -z "$tarball" ] || [ -f "$tarball" ] || { echo "build-image.sh: no such tarball: $tarball" >&2; exit 66; }
[ -z "$wheelhouse" ] || [ -d "$wheelhouse" ] || { echo "build-image.sh: no such wheelhouse: $wheelhouse" >&2; exit 66; }

if [ -z "$tag" ]; then
  version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' core/version.py)
  commit=$(git rev-parse --short=12 HEAD)
  if [ -n "$(git status --porcelain -- core worker controller setup.cfg pyproject.toml deploy/docker)" ]; then
    echo "build-image.sh: uncommitted changes under core/, worker/, controller/ or deploy/docker/;" \
         "commit them or pass --tag explicitly" >&2
    exit 65
  fi
  tag="${version}-${commit}"
fi

repo_uri=alignbatch-worker
if [ "$push" = 1 ]; then
  repo_uri=$(aws cloudformation describe-stacks --stack-name "${stack_prefix}-storage" \
    --query "Stacks[0].Outputs[?OutputKey=='EcrRepositoryUri'].OutputValue" --output text)
  [ -n "$repo_uri" ] && [ "$repo_uri" != None ] || {
    echo "build-image.sh: stack ${stack_prefix}-storage has no EcrRepositoryUri output; deploy storage.yaml first" >&2
    exit 66
  }
  repo_name=${repo_uri#*/}
  if aws ecr describe-images --repository-name "$repo_name" --image-ids "imageTag=$tag" >/dev/null 2>&1; then
    echo "build-image.sh: $repo_uri:$tag already exists (tags are immutable); choose another --tag" >&2
    exit 73
  fi
fi

# The build context holds only what the image installs (docker and podman read ignore files differently, so
# it is assembled here rather than filtered): never a virtualenv, test data or a ledger.
context=$(mktemp -d "${TMPDIR:-/tmp}/alignbatch-image.XXXXXX")
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/deploy"
cp -R setup.cfg pyproject.toml README.md core worker controller "$context/"
cp -R deploy/docker "$context/deploy/docker"
# _aot: kernels compiled ahead of time on this machine; the image compiles its own for its targets
find "$context" \( -name __pycache__ -o -name '*.pyc' -o -name '*.egg-info' -o -name _aot \) -prune -exec rm -rf {} +
rm -f "$context"/deploy/docker/vendor/*.tar.gz "$context"/deploy/docker/wheels/*.whl

build_args=(--platform "$platform" -f deploy/docker/Dockerfile -t "$repo_uri:$tag")
# podman's default OCI format drops SHELL (the Dockerfile's RUNs rely on bash with pipefail).
[ "$(basename "$engine")" = podman ] && build_args+=(--format docker)
[ -n "$base_image" ] && build_args+=(--build-arg "BASE_IMAGE=$base_image")
if [ -n "$tarball" ]; then
  cp "$tarball" "$context/deploy/docker/vendor/"
  build_args+=(--build-arg "ALIGNSTATS_TARBALL=$(basename "$tarball")")
fi
[ -z "$wheelhouse" ] || cp "$wheelhouse"/*.whl "$context/deploy/docker/wheels/"

# "${a[@]+"${a[@]}"}": an empty array under `set -u` is an error in bash 3.2 (macOS's /bin/bash).
(cd "$context" && "$engine" build "${build_args[@]}" ${extra[@]+"${extra[@]}"} .)

if [ "$push" = 1 ]; then
  registry=${repo_uri%%/*}
  aws ecr get-login-password | "$engine" login --username AWS --password-stdin "$registry"
  "$engine" push "$repo_uri:$tag"
  echo "build-image.sh: pushed $repo_uri:$tag"
  echo "next: aws cloudformation deploy --stack-name ${stack_prefix}-batch --template-file deploy/cloudformation/batch.yaml" \
       "--capabilities CAPABILITY_IAM --parameter-overrides ImageTag=$tag"
else
  echo "build-image.sh: built $repo_uri:$tag (not pushed)"
fi
echo "$tag"
