#!/usr/bin/env bash
# Builds the contract stand-ins of every image Antipode's DeathStarBench stack (and its wrk2) runs,
# without any registry, TAGGED WITH THE REAL NAMES, so the stack rendered for --profile ssh deploys
# unchanged on the local test bed. On benchpipe/standin-base:bookworm (workloads/image/build.sh).
# Skipped when the images carry the current sources' hash (label benchpipe.contract). README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
hash=$(cd "$repo" && find workloads/antipode-contract -type f -not -path '*/__pycache__/*' | sort \
  | xargs sha1sum | sha1sum | cut -c1-16)
# image|ENTRYPOINT (JSON, or -)|CMD (JSON, or -): the real images' start, where the stack relies on it
images=(
  'yg397/social-network-microservices:antipode|-|["bash"]'
  'yg397/openresty-thrift:latest|-|["/usr/local/openresty/bin/openresty", "-g", "daemon off;"]'
  'yg397/media-frontend:xenial|-|["/usr/local/openresty/bin/openresty", "-g", "daemon off;"]'
  'mongo:4.4.6|["docker-entrypoint.sh"]|["mongod"]'
  'mongodb-delayed:4.4.6|["docker-entrypoint.sh"]|["mongod"]'
  'mongodb-setup:4.4.6|-|["mongodb-setup"]'
  'redis:latest|["docker-entrypoint.sh"]|["redis-server"]'
  'memcached:latest|["docker-entrypoint.sh"]|["memcached"]'
  'rabbitmq:3.8-management|["docker-entrypoint.sh"]|["rabbitmq-server"]'
  'rabbitmq-setup:3.8|-|["rabbitmq-setup"]'
  'jaegertracing/all-in-one:latest|["/go/bin/all-in-one-linux"]|-'
  'jonathanmace/xtrace-server:latest|-|["xtrace-server"]'
  'mrvautin/adminmongo:latest|-|["adminmongo"]'
  'wrk2:antipode|-|["/wrk2/wrk"]'
)
current=1
for entry in "${images[@]}"; do
  label=$(docker image inspect -f '{{index .Config.Labels "benchpipe.contract"}}' "${entry%%|*}" 2>/dev/null || true)
  [ "$label" = "$hash" ] || current=0
done
if [ "$current" = 1 ] && [ "${1:-}" != --force ]; then echo "antipode contract images current ($hash)"; exit 0; fi
docker image inspect benchpipe/standin-base:bookworm >/dev/null 2>&1 || bash "$repo/workloads/image/build.sh"

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/root/opt/dsbcontract" "$ctx/root/usr/local/bin" "$ctx/root/go/bin" "$ctx/root/usr/local/openresty/bin" "$ctx/root/wrk2"
cp -r "$here/dsbcontract" "$ctx/root/opt/dsbcontract/"
find "$ctx" -name __pycache__ -prune -exec rm -rf {} +
shim() {  # shim FILE MODULE: an executable (named as the real one) that runs dsbcontract.MODULE.main
  printf '#!/usr/bin/python3\nimport sys\nsys.path.insert(0, "/opt/dsbcontract")\nfrom dsbcontract.%s import main\nsys.exit(main())\n' "$2" > "$1"
  chmod 0755 "$1"
}
bin="$ctx/root/usr/local/bin"
for b in SocialGraphService WriteHomeTimelineService HomeTimelineService PostStorageService ComposePostService \
  UniqueIdService TextService UserTimelineService UrlShortenService UserMentionService UserService MediaService; do
  shim "$bin/$b" dsb
done
shim "$bin/AntipodeOracle" dsb
for b in redis-server memcached mongod; do shim "$bin/$b" stores; done
shim "$bin/rabbitmq-server" rabbitmq
for b in dockerize mongodb-setup rabbitmq-setup xtrace-server adminmongo; do shim "$bin/$b" tools; done
shim "$ctx/root/go/bin/all-in-one-linux" jaeger
shim "$ctx/root/usr/local/openresty/bin/openresty" frontend
shim "$ctx/root/wrk2/wrk" wrk2
printf '#!/bin/sh\nexec "$@"\n' > "$bin/docker-entrypoint.sh"
chmod 0755 "$bin/docker-entrypoint.sh"
cat > "$ctx/Dockerfile" <<DOCKER
FROM benchpipe/standin-base:bookworm
COPY root /
ENV PYTHONUNBUFFERED=1
DOCKER
DOCKER_BUILDKIT=0 docker build -q -t benchpipe/dsb-contract-base:local "$ctx" >/dev/null
for entry in "${images[@]}"; do
  IFS='|' read -r image entrypoint cmd <<<"$entry"
  {
    echo "FROM benchpipe/dsb-contract-base:local"
    # DeathStarBench's media frontend: the same openresty, serving only its own mounts
    [ "$image" = yg397/media-frontend:xenial ] && echo "RUN mkdir /media-frontend"
    [ "$entrypoint" != - ] && echo "ENTRYPOINT $entrypoint"
    [ "$cmd" != - ] && echo "CMD $cmd"
    echo "LABEL benchpipe.contract=$hash"
  } > "$ctx/Dockerfile.one"
  DOCKER_BUILDKIT=0 docker build -q -f "$ctx/Dockerfile.one" -t "$image" "$ctx" >/dev/null 2>"$ctx/err" || { cat "$ctx/err" >&2; exit 1; }
done
echo "built ${#images[@]} antipode contract images ($hash)"
