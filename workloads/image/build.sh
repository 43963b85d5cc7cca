#!/usr/bin/env bash
# Builds the stand-in's container image without any registry: a Debian base made by debootstrap
# (cached outside the repository), `docker import`ed, plus workloads/standin on top.
# Usage: bash workloads/image/build.sh [tag]      (default benchpipe/standin:local)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
tag=${1:-benchpipe/standin:local}
base_tag=benchpipe/standin-base:bookworm
cache=${BENCHPIPE_CACHE:-$HOME/.cache/benchpipe}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$cache"
if ! docker image inspect "$base_tag" >/dev/null 2>&1; then
  tarball="$cache/standin-base-bookworm.tar"
  if [ ! -s "$tarball" ]; then
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase --include=python3,python3-aiohttp,ca-certificates,procps bookworm "$root" "$mirror"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  fi
  docker import "$tarball" "$base_tag"
fi
ctx=$(mktemp -d)
cp -r "$repo/workloads/standin" "$ctx/standin"
find "$ctx" -name __pycache__ -prune -exec rm -rf {} +
cat > "$ctx/Dockerfile" <<'DOCKER'
FROM benchpipe/standin-base:bookworm
COPY standin /opt/standin/standin
ENV PYTHONPATH=/opt/standin PYTHONUNBUFFERED=1
ENTRYPOINT ["python3", "-m", "standin"]
DOCKER
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >/dev/null
rm -rf "$ctx"
echo "built $tag"
