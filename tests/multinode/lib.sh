# Two "nodes" on this machine for the multi-node tests (sourced). Each node is a holder process
# in its own network, UTS (hostname) and mount namespace, made with unshare; the nodes are joined
# by one veth pair with private addresses (10.213.77.1/.2 on "kiln0") that exist only inside those
# namespaces: no default route, so no traffic leaves them. Each node bind-mounts its own
# /etc/hosts (the two hostnames) and, per test, its checkpoint dir. mpirun on node 1 starts
# orted on node 2 through tests/multinode/rsh_agent.sh (nsenter instead of ssh), TCP only.
# Everything is torn down on exit, even on failure, and the teardown is checked: no process left
# in the namespaces, no namespace, no veth link, no mount (mounts live in the nodes' private mount
# namespaces, which die with their last process). Needs root; skips (77, a failure under CI=true)
# when not root or when namespaces cannot be made here.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$root/tests/e2e/skip.sh"  # skip, data_file
source "$root/tests/e2e/tiny_data.sh"  # tiny_data, TINY_ARGS, strip_timing
source "$root/tests/dist/check_parity.sh"  # check_parity
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || skip "the multinode tests make network namespaces, which needs root"
for b in unshare nsenter ip mpirun; do command -v $b >/dev/null || skip "$b not found (util-linux, iproute2, OpenMPI)"; done

tmp=$(mktemp -d /tmp/kiln_mn_XXXXXX)
chmod 755 "$tmp"
MN_IF=kiln0                               # the veth end's name inside each node
MN_NET=10.213.77                          # private /24, only inside the two namespaces
MN_HOSTS=(kiln-node1 kiln-node2)
MN_VETH=kmn$(( $$ % 100000 ))             # host-side names while the pair is being made
MN_PIDS=()                                # holder pid per node (index 0 = node 1)
MN_NS=()                                  # "net:[inode]" per node, for the teardown check
MN_MNT=()                                 # "mnt:[inode]" per node

# on NODE CMD...: run CMD on node NODE (1 or 2): its network, hostname and mount namespaces, this
# directory as working directory.
on() {
  local pid=${MN_PIDS[$(( $1 - 1 ))]}; shift
  nsenter -t "$pid" --net --uts --mount --wd="$PWD" -- "$@"
}

# pids_in KIND NS: every process whose KIND namespace (net, mnt) is NS ("net:[inode]"); one ls,
# not a readlink per process (this runs in loops on a loaded machine).
pids_in() {
  { ls -l /proc/[0-9]*/ns/"$1" 2>/dev/null || true; } | awk -v ns="$2" '$NF == ns { split($(NF-2), a, "/"); print a[3] }'
}
# node_pids NODE: every process in NODE's network namespace except its holder.
node_pids() { pids_in net "${MN_NS[$(( $1 - 1 ))]}" | grep -vx "${MN_PIDS[$(( $1 - 1 ))]}" || true; }

mn_teardown() {
  local rc=$? i p left=""
  trap - EXIT
  set +e
  for i in 1 2; do
    [ -n "${MN_PIDS[$(( i - 1 ))]:-}" ] || continue
    for p in $(node_pids $i); do kill -9 "$p" 2>/dev/null; done
    kill -9 "${MN_PIDS[$(( i - 1 ))]}" 2>/dev/null
  done
  for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done  # this script's own background jobs
  wait 2>/dev/null
  ip link del "${MN_VETH}a" 2>/dev/null  # only if node setup failed half-way
  # The check: no process in either namespace (so the namespaces, their mounts and the veth pair,
  # which lives in them, are gone), no veth link in this namespace, no mount under $tmp.
  for _ in $(seq 50); do  # SIGKILLed processes take a moment to be gone
    left=""
    for i in "${!MN_NS[@]}"; do
      for p in $(pids_in net "${MN_NS[$i]}") $(pids_in mnt "${MN_MNT[$i]}"); do left+=" pid $p"; done
    done
    [ -n "$left" ] || break
    sleep 0.1
  done
  ip link show "${MN_VETH}a" >/dev/null 2>&1 && left+=" link ${MN_VETH}a"
  ip link show "${MN_VETH}b" >/dev/null 2>&1 && left+=" link ${MN_VETH}b"
  ip -o addr show | grep -q "$MN_NET\." && left+=" address $MN_NET.x in this namespace"
  grep -q " $tmp" /proc/self/mountinfo && left+=" mount under $tmp"
  if [ -n "$left" ]; then
    echo "FAIL: teardown left:$left" >&2
    rc=1
  else
    echo "[multinode] teardown clean: no process, namespace, link or mount left"
  fi
  [ -z "${KILN_MN_KEEP:-}" ] || cp -r "$tmp" "$KILN_MN_KEEP"  # debugging aid
  rm -rf "$tmp"
  exit $rc
}
trap mn_teardown EXIT
trap 'exit 130' INT TERM

# make_nodes: the two nodes, up and able to reach each other over the veth pair only.
make_nodes() {
  local i
  printf '127.0.0.1 localhost\n%s.1 %s\n%s.2 %s\n' "$MN_NET" "${MN_HOSTS[0]}" "$MN_NET" "${MN_HOSTS[1]}" >"$tmp/hosts"
  for i in 1 2; do
    # The holder: new net + UTS + mount namespaces (mount propagation private: nothing mounted
    # inside shows outside), its hostname set, then it sleeps until the teardown kills it.
    unshare --net --uts --mount --propagation private -- \
      sh -c "hostname ${MN_HOSTS[$(( i - 1 ))]} && mount --bind $tmp/hosts /etc/hosts && exec sleep 100000" &
    MN_PIDS+=("$!")
  done
  for i in 1 2; do  # wait until each holder is in place (hostname set, sleeping)
    for _ in $(seq 100); do
      [ "$(on $i hostname 2>/dev/null)" = "${MN_HOSTS[$(( i - 1 ))]}" ] && grep -q "$MN_NET" /proc/"${MN_PIDS[$(( i - 1 ))]}"/root/etc/hosts 2>/dev/null && break
      sleep 0.05
    done
    [ "$(on $i hostname 2>/dev/null)" = "${MN_HOSTS[$(( i - 1 ))]}" ] \
      || { [ "${CI:-}" = true ] && fail "cannot make namespace node $i here"; skip "cannot make network/UTS/mount namespaces here"; }
    MN_NS+=("$(readlink /proc/"${MN_PIDS[$(( i - 1 ))]}"/ns/net)")
    MN_MNT+=("$(readlink /proc/"${MN_PIDS[$(( i - 1 ))]}"/ns/mnt)")
  done
  [ "${MN_NS[0]}" != "$(readlink /proc/self/ns/net)" ] || fail "node 1 is not in its own network namespace"
  ip link add "${MN_VETH}a" type veth peer name "${MN_VETH}b" || fail "cannot make a veth pair"
  ip link set "${MN_VETH}a" netns "${MN_PIDS[0]}"
  ip link set "${MN_VETH}b" netns "${MN_PIDS[1]}"
  for i in 1 2; do
    on $i ip link set lo up
    on $i ip link set "${MN_VETH}$([ $i = 1 ] && echo a || echo b)" name $MN_IF
    on $i ip addr add "$MN_NET.$i/24" dev $MN_IF
    on $i ip link set $MN_IF up
  done
  # Reachable: a TCP connect to a closed port on node 2 is refused at once (unreachable: it hangs).
  reach() { local out; out=$(on 1 timeout 2 bash -c "echo >/dev/tcp/${MN_HOSTS[1]}/9" 2>&1) || true; [[ $out == *refused* ]]; }
  for _ in $(seq 20); do reach && break; sleep 0.1; done
  reach || fail "node 1 cannot reach node 2 over $MN_IF"
  echo "[multinode] nodes up: ${MN_HOSTS[0]} ($MN_NET.1, pid ${MN_PIDS[0]}) and ${MN_HOSTS[1]} ($MN_NET.2, pid ${MN_PIDS[1]}) on a veth pair"
  printf '%s %s\n' "${MN_HOSTS[0]}" "${MN_PIDS[0]}" "${MN_HOSTS[1]}" "${MN_PIDS[1]}" >"$tmp/nodes"
  printf '%s slots=2\n%s slots=2\n' "${MN_HOSTS[0]}" "${MN_HOSTS[1]}" >"$tmp/hostfile"
  printf '%s slots=2\n' "${MN_HOSTS[0]}" >"$tmp/hostfile1"  # node 1 alone
}

# mount_dir NODE SRC DST: bind-mount SRC at DST on NODE only (its private mount namespace).
mount_dir() { on "$1" mount --bind "$2" "$3"; }

# The "shared disk": $tmp/disk bind-mounted at $MN_DISK on both nodes (as NFS would be), so a run
# dir under $MN_DISK is one directory for every rank; the test reads it at $tmp/disk.
# private_disks instead mounts a different directory per node at the same $MN_DISK path.
MN_DISK=$tmp/mnt
shared_disk() { mkdir -p "$tmp/disk" "$MN_DISK"; mount_dir 1 "$tmp/disk" "$MN_DISK"; mount_dir 2 "$tmp/disk" "$MN_DISK"; }
private_disks() {
  mkdir -p "$tmp/local1" "$tmp/local2" "$MN_DISK"
  mount_dir 1 "$tmp/local1" "$MN_DISK"
  mount_dir 2 "$tmp/local2" "$MN_DISK"
}

# launch NP HOSTFILE LOG ARGS...: launch/pretrain.sh NP ARGS on node 1 (the hostfile and the
# TCP-only flags through KILN_MPIRUN_ARGS), its output to LOG. Bounded by a 240 s timeout.
launch() {
  local np=$1 hf=$2 log=$3; shift 3
  local flags=("${MN_MPI_FLAGS[@]}")
  flags[1]=$hf
  on 1 env KILN_MPIRUN_ARGS="${flags[*]}" timeout --signal=KILL 240 "$root/launch/pretrain.sh" "$np" "$@" >"$log" 2>&1
}

# job_ranks RUN_DIR: "pid rank node" for every ./pretrain rank with run.dir=RUN_DIR on its command
# line (OMPI_COMM_WORLD_RANK in its environment: mpirun and timeout have none).
job_ranks() {
  local p r i
  for p in $(pgrep -f "run.dir=$1( |$)"); do
    r=$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p') || continue
    [ -n "$r" ] || continue
    for i in 1 2; do [[ /proc/$p/ns/net -ef /proc/${MN_PIDS[$(( i - 1 ))]}/ns/net ]] && echo "$p $r $i"; done
  done
  return 0
}

# The mpirun flags of a cluster without ssh (the hostfile must stay the second word): the hostfile, orted started through the nsenter
# agent, TCP only (no shared memory, not even between the ranks of one node) on the veth.
MN_MPI_FLAGS=(--hostfile "$tmp/hostfile" --mca plm_rsh_agent "$root/tests/multinode/rsh_agent.sh"
              --mca btl tcp,self --mca btl_tcp_if_include $MN_IF --mca oob_tcp_if_include $MN_IF
              -x KILN_MN_NODES -x OMP_WAIT_POLICY)
export KILN_MN_NODES=$tmp/nodes  # read by rsh_agent.sh
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

now_ms() { date +%s%3N; }

# mn_start: python with torch + safetensors (for the parity checks), the two nodes, the shared
# disk and the tiny dataset; D / H = a run dir as the ranks see it / as the test reads it.
mn_start() {
  py=${KILN_PYTHON:-python3}
  "$py" -c "import safetensors.torch" 2>/dev/null || skip "$py without safetensors/torch"
  t_start=$(now_ms)
  make_nodes
  shared_disk
  tiny_data "$tmp/data"
  D=$MN_DISK H=$tmp/disk
}
# wait_job PID T0_MS BOUND_S: waits for background job PID at most BOUND_S s after T0_MS (then
# fails: a hang must fail fast, the teardown kills it); sets rc (its exit code) and ms (T0 to end).
wait_job() {
  local deadline=$(( $2 + $3 * 1000 )) i p
  while kill -0 "$1" 2>/dev/null && [ "$(now_ms)" -lt $deadline ]; do sleep 0.05; done
  if kill -0 "$1" 2>/dev/null; then  # say what is left, for the hang's cause
    for i in 1 2; do echo "node $i: $(for p in $(node_pids $i); do printf '%s(%s) ' "$(cat /proc/$p/comm 2>/dev/null)" "$(awk '{print $3}' /proc/$p/stat 2>/dev/null)"; done)"; done
    fail "the job still runs $3 s after the fault: it hangs"
  fi
  set +e; wait "$1"; rc=$?; set -e
  ms=$(( $(now_ms) - $2 ))
}
secs() { echo "$(( $1 / 1000 )).$(printf %03d $(( $1 % 1000 )))"; }
