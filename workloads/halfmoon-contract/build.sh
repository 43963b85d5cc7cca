#!/usr/bin/env bash
# Builds the contract-checking stand-ins of the three real images, without any registry, TAGGED WITH
# THE REAL NAMES so a stack rendered for AWS deploys unchanged on the local test bed:
#   shengqipku/halfmoon:sosp-ae        /boki/{gateway,engine,storage,sequencer,controller,launcher}
#   shengqipku/halfmoon-bench:sosp-ae  /beldi-bin, /bokiflow-bin, /optimal-bin app dirs (+ init), /boki/launcher
#   zookeeper:3.6.2                    a ZooKeeper stand-in on 2181, zkServer.sh/zkCli.sh on PATH
# On top of benchpipe/standin-base:bookworm (workloads/image/build.sh makes it). Skipped when the
# images carry the current sources' hash (label benchpipe.contract). See README.md in this folder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
hash=$(cd "$repo" && find workloads/halfmoon-contract workloads/standin -type f -not -path '*/__pycache__/*' | sort \
  | xargs sha1sum | sha1sum | cut -c1-16)
images=(shengqipku/halfmoon:sosp-ae shengqipku/halfmoon-bench:sosp-ae zookeeper:3.6.2)
current=1
for image in "${images[@]}"; do
  label=$(docker image inspect -f '{{index .Config.Labels "benchpipe.contract"}}' "$image" 2>/dev/null || true)
  [ "$label" = "$hash" ] || current=0
done
if [ "$current" = 1 ] && [ "${1:-}" != --force ]; then echo "contract images current ($hash)"; exit 0; fi
docker image inspect benchpipe/standin-base:bookworm >/dev/null 2>&1 || bash "$repo/workloads/image/build.sh"

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/opt/hmcontract" "$ctx/boki"
cp -r "$here/hmcontract" "$repo/workloads/standin" "$ctx/opt/hmcontract/"
find "$ctx" -name __pycache__ -prune -exec rm -rf {} +
shim() {  # shim FILE MODULE CALL: an executable that runs hmcontract.MODULE's CALL
  printf '#!/usr/bin/python3\nimport sys\nsys.path.insert(0, "/opt/hmcontract")\nfrom hmcontract.%s import main\nsys.exit(%s)\n' \
    "$2" "$3" > "$1"
  chmod 0755 "$1"
}
shim "$ctx/boki/gateway" gateway 'main(sys.argv[1:])'
for c in engine storage sequencer controller launcher; do shim "$ctx/boki/$c" components 'main(sys.argv)'; done

# The bench image: every app directory of sheet §1 with its function binaries and init.
bench="$ctx/bench"
mkdir -p "$bench"
python3 - "$here" "$bench" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
from hmcontract.catalog import APP_DIRS
out = sys.argv[2]
init_src = open(os.path.join(sys.argv[1], "hmcontract", "init_tool.py")).read()
for d in APP_DIRS.values():
    folder = out + d.path
    os.makedirs(folder, exist_ok=True)
    for b in d.binaries:
        with open(f"{folder}/{b}", "w") as f:
            f.write('#!/usr/bin/python3\nimport sys\nsys.path.insert(0, "/opt/hmcontract")\n'
                    'from hmcontract.functions import main\nsys.exit(main(__file__))\n')
        os.chmod(f"{folder}/{b}", 0o755)
    # init runs on the host after `docker run ... cp -r`: one self-contained file that knows its directory.
    with open(f"{folder}/init", "w") as f:
        marker = 'APP_DIR = globals().get("APP_DIR", "")'
        assert marker in init_src
        f.write("#!/usr/bin/env python3\n" + init_src.replace(marker, f"APP_DIR = {d.path!r}"))
    os.chmod(f"{folder}/init", 0o755)
PY
cp -r "$ctx/bench/"* "$ctx/"
rm -rf "$ctx/bench"

cat > "$ctx/Dockerfile.halfmoon" <<DOCKER
FROM benchpipe/standin-base:bookworm
COPY opt /opt
COPY boki /boki
LABEL benchpipe.contract=$hash
DOCKER
cat > "$ctx/Dockerfile.bench" <<DOCKER
FROM benchpipe/standin-base:bookworm
COPY opt /opt
COPY boki/launcher /boki/launcher
COPY beldi-bin /beldi-bin
COPY bokiflow-bin /bokiflow-bin
COPY optimal-bin /optimal-bin
LABEL benchpipe.contract=$hash
DOCKER
# zookeeper:3.6.2's layout: WORKDIR /apache-zookeeper-3.6.2-bin, its bin/ on PATH, ENTRYPOINT
# /docker-entrypoint.sh (runs the command), CMD zkServer.sh start-foreground.
build() {  # build DOCKERFILE-SUFFIX TAG, quiet unless it fails
  DOCKER_BUILDKIT=0 docker build -q -f "$ctx/Dockerfile.$1" -t "$2" "$ctx" >/dev/null 2>"$ctx/build.err" \
    || { cat "$ctx/build.err" >&2; exit 1; }
}
zk=apache-zookeeper-3.6.2-bin
mkdir -p "$ctx/$zk/bin"
printf '#!/bin/sh\n[ "$1" = start-foreground ] || { echo "zkServer.sh stand-in: only start-foreground" >&2; exit 1; }\nexec /usr/bin/python3 -c "import sys; sys.path.insert(0, \\"/opt/hmcontract\\"); from hmcontract.zk import main; sys.exit(main([]))"\n' > "$ctx/$zk/bin/zkServer.sh"
shim "$ctx/$zk/bin/zkCli.sh" zkcli 'main(sys.argv[1:])'
chmod 0755 "$ctx/$zk/bin/zkServer.sh"
printf '#!/bin/sh\nexec "$@"\n' > "$ctx/docker-entrypoint.sh"
chmod 0755 "$ctx/docker-entrypoint.sh"
cat > "$ctx/Dockerfile.zookeeper" <<DOCKER
FROM benchpipe/standin-base:bookworm
COPY opt /opt
COPY $zk /$zk
COPY docker-entrypoint.sh /docker-entrypoint.sh
WORKDIR /$zk
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/$zk/bin
EXPOSE 2181
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["zkServer.sh", "start-foreground"]
LABEL benchpipe.contract=$hash
DOCKER
build halfmoon shengqipku/halfmoon:sosp-ae
build bench shengqipku/halfmoon-bench:sosp-ae
build zookeeper zookeeper:3.6.2
echo "built ${images[*]} ($hash)"
