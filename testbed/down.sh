#!/usr/bin/env bash
# Stops what testbed/up.sh started (and only that): sshd, the swarm it created, dockerd it started.
set -uo pipefail
STATE=${BENCHPIPE_TESTBED:-/tmp/benchpipe-testbed}
[ -f "$STATE/started" ] || exit 0
docker stack ls --format '{{.Name}}' 2>/dev/null | grep -x 'benchpipe.*' | xargs -r -n1 docker stack rm >/dev/null 2>&1
tac "$STATE/started" | while read -r what pid; do
  case "$what" in
    sshd) kill "$pid" 2>/dev/null ;;
    swarm) docker swarm leave --force >/dev/null 2>&1 ;;
    dockerd) kill "$pid" 2>/dev/null; for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done ;;
  esac
done
rm -f "$STATE/started" "$STATE/env"
echo "test bed down"
