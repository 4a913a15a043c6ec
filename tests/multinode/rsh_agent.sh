#!/usr/bin/env bash
# OpenMPI's plm_rsh_agent for the two namespace "nodes" (tests/multinode/lib.sh): called as ssh
# would be, `rsh_agent.sh [ssh options] HOST COMMAND...`, it runs COMMAND (orted) with /bin/sh in
# HOST's network, UTS and mount namespaces, with a clean environment as a remote login would give
# (PATH and HOME only), so ranks on another node get only what mpirun passes with -x.
# Like `ssh -o ServerAliveInterval=1 -o ServerAliveCountMax=3` (what a cluster's mpirun should
# use), it gives up with exit 255 when HOST stops answering over the network for 3 s, which is how
# mpirun learns that a node is gone when the network is cut (a TCP connection to a vanished peer
# would otherwise stay open for many minutes). HOST answers when a TCP connect to its port 9 is
# refused at once; the probe goes from this (mpirun's) namespace over the veth pair.
set -euo pipefail
while [[ $# -gt 0 && $1 == -* ]]; do shift; done  # ssh options (-x, ...), none we need
host=$1; shift
pid=$(awk -v h="$host" '$1 == h { print $2 }' "${KILN_MN_NODES:?set by tests/multinode/lib.sh}")
[ -n "$pid" ] || { echo "rsh_agent.sh: unknown node '$host'" >&2; exit 255; }
nsenter -t "$pid" --net --uts --mount --wd=/ -- env -i PATH="$PATH" HOME="${HOME:-/root}" /bin/sh -c "$*" &
child=$!
trap 'kill -TERM $child 2>/dev/null; wait $child; exit 255' TERM INT HUP
alive() { local out; out=$(timeout 1 bash -c "echo >/dev/tcp/$host/9" 2>&1) || true; [[ $out == *refused* ]]; }
misses=0 max_misses=${KILN_MN_AGENT_MISSES:-3}  # tests/multinode/faults.sh sets more
while kill -0 $child 2>/dev/null; do
  sleep 1 & wait $!
  if alive; then misses=0; else misses=$(( misses + 1 )); fi
  if [ $misses -ge $max_misses ]; then
    echo "rsh_agent.sh: $host did not answer for $max_misses s: connection lost" >&2
    exit 255
  fi
done
set +e; wait $child; exit $?
