#!/usr/bin/env bash
# Idempotent: PyPy (Debian's pypy3) and a PyPy venv with the handlers' libraries, in
# workloads/pronghorn/.venv (the host's default --pypy). Run by scripts/install.sh.
#   --jvm        also a JDK (Debian's default-jdk-headless, ~250 MB, so not in the local default)
#                and Figure 5's runtime compiled into workloads/pronghorn/jvm/classes
#   --criu-host  everything a CRIU host needs (debian-packages-criu-host.txt: criu, the JDK),
#                then `criu check`, which must pass (run by the remote-process deployer's setup)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${PRONGHORN_VENV:-$here/.venv}"
jvm=0 criu=0
for arg in "$@"; do
  case "$arg" in
    --jvm) jvm=1 ;;
    --criu-host) jvm=1 criu=1 ;;
    *) echo "install.sh: unknown option $arg (expected --jvm or --criu-host)" >&2; exit 2 ;;
  esac
done
sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
apt_install() {
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "$@" >/dev/null
}
lists="$here/debian-packages.txt"
[ "$criu" = 0 ] || lists="$lists $here/debian-packages-criu-host.txt"
# shellcheck disable=SC2086
wanted=$(grep -hv '^#' $lists | tr -s ' \n' ' ')
[ "$jvm" = 0 ] || wanted="$wanted default-jdk-headless"
missing=""
for pkg in $wanted; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
done
# shellcheck disable=SC2086
[ -z "$missing" ] || apt_install $missing
[ -x "$venv/bin/pypy3" ] || pypy3 -m venv "$venv" >/dev/null
if ! "$venv/bin/pypy3" - "$here/requirements-pypy.txt" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, _, want = line.partition("==")
        assert version(name) == want, name
PY
then
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements-pypy.txt"
  echo "pronghorn: PyPy venv ready at $venv"
fi
# The media benchmarks' input files (upload, thumbnail, video), generated once per machine.
PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}" PRONGHORN_INPUTS="${PRONGHORN_INPUTS:-$here/.inputs}" \
  "$venv/bin/pypy3" -c 'from pronghorn.handlers import ensure_inputs
for name in ("upload", "thumbnail", "video"):
    ensure_inputs(name)'
if [ "$jvm" = 1 ]; then
  classes="${PRONGHORN_JVM_CLASSES:-$here/jvm/classes}"
  if [ ! -f "$classes/PronghornRuntime.class" ] || [ "$here/jvm/PronghornRuntime.java" -nt "$classes/PronghornRuntime.class" ]; then
    mkdir -p "$classes"
    javac -d "$classes" "$here/jvm/PronghornRuntime.java"
    echo "pronghorn: JVM runtime compiled into $classes"
  fi
fi
if [ "$criu" = 1 ]; then
  # The kernel decides whether CRIU works (Debian 12's criu 3.17.1 fails on kernel 6.18).
  crit=$($sudo_ criu check 2>&1) || { echo "pronghorn: \`criu check\` fails on this host:" >&2; echo "$crit" >&2; exit 1; }
fi
# Silent when there was nothing to do: a second install prints nothing (tests/test_fresh_install.py).
