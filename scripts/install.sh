#!/usr/bin/env bash
# Installs what the local pipeline needs on a fresh Debian/Ubuntu machine with Python >= 3.11.
# Python packages go into a virtual environment in the repository (.venv), never into the system
# Python: Debian's and Ubuntu's python3 is "externally managed" (PEP 668) and refuses pip installs.
# Debian packages (python3-venv if missing; with --test the test bed's) come from apt.
# Usage: bash scripts/install.sh [--test]   (--test adds the test tools and the local test bed's packages)
# Then:  . .venv/bin/activate               (puts .venv/bin first on PATH: snakemake and its jobs' python)
# A second run with nothing changed is a no-op: pip runs only when pyproject.toml (or the Python) changed.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
venv=.venv
test_tools=0
[ "${1:-}" = "--test" ] && test_tools=1

need=()
if ! command -v "$py" >/dev/null; then
  need+=(python3 python3-venv)
elif ! "$venv/bin/python" -m pip --version >/dev/null 2>&1 && ! "$py" -c 'import ensurepip' 2>/dev/null; then
  # Debian ships venv's pip bootstrap (ensurepip) separately, per Python version.
  need+=("$("$py" -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])')")
fi
if [ "$test_tools" = 1 ]; then
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
  command -v wrk >/dev/null || need+=(wrk)
  command -v lua5.1 >/dev/null || need+=(lua5.1)
fi
# Each suite's Debian packages (workloads/<suite>/debian-packages.txt, one a line, # comments).
for list in workloads/*/debian-packages.txt; do
  [ -f "$list" ] || continue
  while read -r pkg _; do
    [ -n "$pkg" ] && [ "${pkg#\#}" = "$pkg" ] || continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
  done < "$list"
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "scripts/install.sh: $py is Python $("$py" -c 'import platform; print(platform.python_version())'), expected >= 3.11 (set PYTHON=/path/to/python3.11 or newer)" >&2
  exit 1
fi
# A venv without a working pip (a failed earlier attempt, or its Python upgraded away) is made anew.
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  echo "creating the virtual environment $venv"
  "$py" -m venv --clear "$venv"
fi

# pip runs when what it installs from changed: pyproject.toml, the venv's Python, the folder.
key=$({ cat pyproject.toml; "$venv/bin/python" -VV; pwd; } | sha256sum | cut -d' ' -f1)
stamps=(base); target=.
[ "$test_tools" = 1 ] && stamps+=(test) && target=".[test]"
stale=0
[ -x "$venv/bin/snakemake" ] || stale=1
for stamp in "${stamps[@]}"; do [ "$(cat "$venv/.installed-$stamp" 2>/dev/null)" = "$key" ] || stale=1; done
if [ "$stale" = 1 ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$target"
  for stamp in "${stamps[@]}"; do echo "$key" > "$venv/.installed-$stamp"; done
fi

# Each suite's own idempotent hook, with the venv's python and tools first on PATH.
for hook in workloads/*/install.sh; do
  [ -f "$hook" ] || continue
  PATH="$PWD/$venv/bin:$PATH" VIRTUAL_ENV="$PWD/$venv" bash "$hook"
done
exit 0
