#!/usr/bin/env bash
# Build the worker image (deploy/docker/Dockerfile) and push it to the storage stack's ECR repository.
#
#   deploy/build-image.sh [--stack-prefix alignbatch] [--tag TAG] [--base-image IMAGE] [--no-push]
#
# TAG defaults to <package version>-<git commit>; the repository's tags are immutable, so a tag that already
# exists is refused rather than overwritten. Prints the tag to pass to the Batch stack as ImageTag.
# Needs docker (or CONTAINER_ENGINE=podman), the AWS CLI v2 and credentials for the account.
set -euo pipefail
cd "$(dirname "$0")/.."

stack_prefix=alignbatch
tag=""
base_image=""
push=1
engine="${CONTAINER_ENGINE:-docker}"

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --stack-prefix) stack_prefix="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --base-image) base_image="$2"; shift 2 ;;
    --no-push) push=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "build-image.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

command -v "$engine" >/dev/null || { echo "build-image.sh: $engine not found (set CONTAINER_ENGINE)" >&2; exit 69; }

if [ -z "$tag" ]; then
  version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' worker/version.py)
  commit=$(git rev-parse --short=12 HEAD)
  if [ -n "$(git status --porcelain -- worker controller setup.cfg deploy/docker)" ]; then
    echo "build-image.sh: uncommitted changes under worker/, controller/ or deploy/docker/;" \
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

build_args=()
[ -n "$base_image" ] && build_args+=(--build-arg "BASE_IMAGE=$base_image")
"$engine" build "${build_args[@]}" -f deploy/docker/Dockerfile -t "$repo_uri:$tag" .

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
