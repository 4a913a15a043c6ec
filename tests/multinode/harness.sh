#!/usr/bin/env bash
# The two-node harness itself (tests/multinode/lib.sh): the nodes have their own hostnames and
# addresses, no route out of the namespaces, an mpirun across them places 2 ranks per node over
# TCP; and the teardown leaves nothing behind, even when the test using it fails or is killed
# with SIGTERM while processes and mounts are live on both nodes (checked from outside).
# Usage: harness.sh (runs itself as the child with --child MODE).
set -euo pipefail
if [ "${1:-}" = --child ]; then
  source "$(dirname "$0")/lib.sh"
  make_nodes
  shared_disk
  { on 1 sleep 1000 & on 2 sleep 1000 & } 2>/dev/null
  for _ in $(seq 50); do [ -n "$(node_pids 1)" ] && [ -n "$(node_pids 2)" ] && break; sleep 0.1; done
  echo "STATE ${MN_NS[*]} ${MN_MNT[*]} ${MN_VETH} $tmp"
  [ "$2" = fail ] && fail "failing on purpose with processes and mounts live on both nodes"
  sleep 100 & wait $!  # killed by the parent (SIGTERM); a foreground sleep would delay the trap
fi
source "$(dirname "$0")/lib.sh"
fail() { echo "FAIL: $*" >&2; exit 1; }
make_nodes
[ "$(on 1 hostname)" = kiln-node1 ] && [ "$(on 2 hostname)" = kiln-node2 ] || fail "hostnames"
[ "$(hostname)" != kiln-node1 ] || fail "node 1's hostname leaked into this namespace"
routes=$(on 1 ip route; on 2 ip route)
echo "$routes"
! grep -q default <<<"$routes" || fail "a default route inside a node: traffic could leave the namespaces"
[ "$(on 1 ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | tr '\n' ' ')" = "$MN_IF lo " ] || fail "node 1 has links besides lo and $MN_IF"
out=$(cd /tmp && on 1 timeout 60 mpirun --allow-run-as-root -np 4 "${MN_MPI_FLAGS[@]}" \
  sh -c 'echo "rank $OMPI_COMM_WORLD_RANK local $OMPI_COMM_WORLD_LOCAL_RANK on $(hostname)"' | sort) \
  || fail "mpirun across the nodes"
echo "$out"
[ "$out" = "$(printf 'rank 0 local 0 on kiln-node1\nrank 1 local 1 on kiln-node1\nrank 2 local 0 on kiln-node2\nrank 3 local 1 on kiln-node2')" ] \
  || fail "mpirun did not place 2 ranks per node"

# check_gone STATE: nothing of a child's nodes left, seen from here.
check_gone() {
  local net1 net2 mnt1 mnt2 veth ctmp p
  read -r net1 net2 mnt1 mnt2 veth ctmp <<<"$1"
  [ -n "$ctmp" ] || fail "no state from the child"
  p=$(pids_in net "$net1"; pids_in net "$net2"; pids_in mnt "$mnt1"; pids_in mnt "$mnt2")
  [ -z "$p" ] || fail "process(es) $p left in a node's namespaces"
  ! ip link show "${veth}a" >/dev/null 2>&1 && ! ip link show "${veth}b" >/dev/null 2>&1 || fail "veth $veth left"
  ! grep -q " $ctmp" /proc/self/mountinfo || fail "a mount under $ctmp left"
  [ ! -e "$ctmp" ] || fail "$ctmp left"
}
set +e
"$0" --child fail >"$tmp/child1.log" 2>&1; rc=$?
set -e
cat "$tmp/child1.log"
[ $rc = 1 ] || fail "the failing child exited $rc"
grep -q "teardown clean" "$tmp/child1.log" || fail "the failing child's teardown did not report clean"
check_gone "$(sed -n 's/^STATE //p' "$tmp/child1.log")"
echo "PASS teardown after a failure"
"$0" --child term >"$tmp/child2.log" 2>&1 &
child=$!
for _ in $(seq 600); do grep -q '^STATE' "$tmp/child2.log" && break; sleep 0.1; done
grep -q '^STATE' "$tmp/child2.log" || { cat "$tmp/child2.log"; fail "the child never made its nodes"; }
kill -TERM $child
set +e; wait $child; rc=$?; set -e
cat "$tmp/child2.log"
[ $rc = 130 ] || fail "the SIGTERMed child exited $rc"
check_gone "$(sed -n 's/^STATE //p' "$tmp/child2.log")"
echo "PASS teardown after SIGTERM"
