#!/usr/bin/env bash
# The local test bed for the SSH/Swarm path, all on loopback: dockerd (if not running) with a
# single-node swarm, sshd on 127.0.0.1:2222 and 127.0.0.2:2222 (two "hosts") with a key made here,
# the stand-in image and the contract images (workloads/halfmoon-contract, workloads/antipode-contract). Writes the addresses and
# key to $STATE/env; testbed/down.sh stops exactly what this started.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
STATE=${BENCHPIPE_TESTBED:-/tmp/benchpipe-testbed}
PORT=${BENCHPIPE_TESTBED_SSH_PORT:-2222}
mkdir -p "$STATE"
touch "$STATE/started"  # a second up.sh keeps what the first started, for down.sh
if ! docker info >/dev/null 2>&1; then
  dockerd >"$STATE/dockerd.log" 2>&1 &
  echo "dockerd $!" >> "$STATE/started"
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
fi
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
  echo "swarm" >> "$STATE/started"
fi
docker image inspect benchpipe/standin:local >/dev/null 2>&1 || bash "$repo/workloads/image/build.sh"
# The contract-checking stand-ins, under the real images' names (rebuilt only when their sources change).
bash "$repo/workloads/halfmoon-contract/build.sh" >/dev/null
bash "$repo/workloads/antipode-contract/build.sh" >/dev/null
# sshd with its own host key and one client key; only loopback addresses.
[ -f "$STATE/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$STATE/host_key"
[ -f "$STATE/client_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$STATE/client_key"
cp "$STATE/client_key.pub" "$STATE/authorized_keys"
chmod 600 "$STATE/authorized_keys" "$STATE/client_key"
mkdir -p /run/sshd
cat > "$STATE/sshd_config" <<CONF
ListenAddress 127.0.0.1:$PORT
ListenAddress 127.0.0.2:$PORT
HostKey $STATE/host_key
AuthorizedKeysFile $STATE/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
PidFile $STATE/sshd.pid
Subsystem sftp internal-sftp
CONF
if ! { [ -f "$STATE/sshd.pid" ] && kill -0 "$(cat "$STATE/sshd.pid")" 2>/dev/null; }; then
  /usr/sbin/sshd -f "$STATE/sshd_config" -E "$STATE/sshd.log"
  for _ in $(seq 50); do [ -f "$STATE/sshd.pid" ] && break; sleep 0.1; done
  echo "sshd $(cat "$STATE/sshd.pid")" >> "$STATE/started"
fi
cat > "$STATE/env" <<ENV
BENCHPIPE_TESTBED_SSH_PORT=$PORT
BENCHPIPE_TESTBED_KEY=$STATE/client_key
BENCHPIPE_TESTBED_USER=$(id -un)
ENV
echo "test bed up: sshd on 127.0.0.1:$PORT and 127.0.0.2:$PORT, swarm $(docker info --format '{{.Swarm.LocalNodeState}}')"
