#!/usr/bin/env bash
# Installs what the local pipeline needs on a fresh Debian/Ubuntu machine with Python >= 3.11.
# Usage: bash scripts/install.sh [--test]   (--test adds the test tools and the local test bed's packages)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
extra=""
if [ "${1:-}" = "--test" ]; then
  extra="[test]"
  need=()
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
  command -v wrk >/dev/null || need+=(wrk)
  command -v lua5.1 >/dev/null || need+=(lua5.1)
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing Debian packages: ${need[*]}"
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi
$py -m pip install -q --disable-pip-version-check -e ".${extra}"
# Each suite's stand-in: its Debian packages and its own idempotent install hook.
for hook in workloads/*/install.sh; do
  [ -e "$hook" ] || continue
  echo "running $hook"
  bash "$hook"
done
