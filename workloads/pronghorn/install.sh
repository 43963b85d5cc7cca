#!/usr/bin/env bash
# Idempotent: PyPy (Debian's pypy3) and a PyPy venv with the handlers' libraries, in
# workloads/pronghorn/.venv (the host's default --pypy). Run by scripts/install.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${PRONGHORN_VENV:-$here/.venv}"
if ! command -v pypy3 >/dev/null; then
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq
  # shellcheck disable=SC2046
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq $(grep -v '^#' "$here/debian-packages.txt") >/dev/null
fi
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
# Silent when there was nothing to do: a second install prints nothing (tests/test_fresh_install.py).
