#!/usr/bin/env bash
# A stock-like Ubuntu 24.04 (noble) minbase for tests/test_fresh_install.py, made by debootstrap from
# the Ubuntu archive (main + universe, as a stock install has) and `docker import`ed as
# benchpipe/ubuntu-base:noble. Not part of CI (about 90 s more); run it, then
#   BENCHPIPE_FRESH_BASES="benchpipe/standin-base:bookworm benchpipe/ubuntu-base:noble" \
#     python -m pytest tests/test_fresh_install.py
set -euo pipefail
tag=benchpipe/ubuntu-base:noble
mirror=${UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}
docker image inspect "$tag" >/dev/null 2>&1 && exit 0
scripts=/usr/share/debootstrap/scripts
# Debian 12's debootstrap predates noble; every Ubuntu release uses the same script (gutsy).
[ -e "$scripts/noble" ] || ln -s gutsy "$scripts/noble"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --components=main,universe --include=python3,ca-certificates noble "$root" "$mirror"
printf 'deb %s noble main universe\ndeb %s noble-updates main universe\n' "$mirror" "$mirror" > "$root/etc/apt/sources.list"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import - "$tag"
echo "built $tag"
