#!/bin/sh
# The start-up gate of a Halfmoon stack: the command of the zookeeper-setup service, placed on the
# manager as /tmp/zk_setup.sh (stack.host_files) and mounted at /tmp/boki/zk_setup.sh.
# Every Halfmoon component waits for the znode /faas/cmd/start. This script recreates /faas and its
# children, gives the components GATE_S seconds (the first argument; the artifact's 80) to start and
# register, opens the gate, then stays up. zkCli.sh is on the zookeeper image's PATH.
set -u
GATE_S="${1:-80}"
ZK="${ZK_SERVER:-zookeeper:2181}"

zk() { zkCli.sh -server "$ZK" "$@" 2>&1; }

# ZooKeeper starts beside this service: wait until it answers (the root always lists /zookeeper).
until zk ls / | grep -q zookeeper; do sleep 1; done

zk deleteall /faas >/dev/null
for node in /faas /faas/node /faas/view /faas/freeze /faas/cmd; do
    zk create "$node" >/dev/null
done
sleep "$GATE_S"
zk create /faas/cmd/start >/dev/null
echo "zk_setup: /faas/cmd/start created after ${GATE_S} s"
exec sleep infinity
