#!/usr/bin/env bash
# Cluster faults on two namespace "nodes" (tests/multinode/lib.sh), the real ./pretrain on 2 ranks
# per node through launch/pretrain.sh, TCP only:
#  1. network cut: node 1's veth end goes down mid-run; the job ends within dist.timeout_s (+ the
#     abort, bound below) with a message naming the ranks (and host) that stopped answering;
#  2. node-local checkpoint dir (each node mounts its own dir at the same path): refused at
#     start, naming the ranks and host that cannot see rank 0's file;
#  3. a node with another tokenizer file at the same path: refused, naming both SHA-256s;
#  4. a node with another config file at the same path: refused, naming the key and both values;
#  1b. a hung node (its ranks SIGSTOPped; network and orted fine, so only kiln's watchdog can end
#     the job): ends within the same bound, naming the ranks that stopped answering.
# Needs root (namespaces), mpirun, KILN_DATA.
source "$(dirname "$0")/lib.sh"
t_start=$(now_ms)
make_nodes
tiny_data "$tmp/data"
D=$MN_DISK H=$tmp/disk
args=("${TINY_ARGS[@]}" train.max_steps=100000 train.device_batch_size=8 train.total_batch_size=2048
      checkpoint.every=0 eval.every=0)
# refused LOG WHAT ARGS...: a launch on both nodes that must fail at start, saying WHAT.
refused() {
  local log=$1 what=$2; shift 2
  local t0=$(now_ms) rc=0
  launch 4 "$tmp/hostfile" "$log" "$@" || rc=$?
  [ $rc != 0 ] || fail "the run was not refused: $(tail -5 "$log")"
  grep -qF -- "$what" "$log" || { tail -20 "$log"; fail "the refusal does not say: $what"; }
  ! grep -q '"step":1,' "$log" "$H"/*/metrics.jsonl 2>/dev/null || fail "it trained before refusing"
  echo "refused in $(secs $(( $(now_ms) - t0 ))) s (exit $rc): $(grep -oF -- "$what" "$log" | head -1)"
  { grep -m1 "error" "$log" || true; } | cut -c1-400
}

# ---- 2. node-local checkpoint dirs (first: before the shared disk is mounted) -----------------
private_disks
refused "$tmp/local.log" "checkpoint.dir = $D/l/ckpt is not shared: rank(s) 2, 3 on host(s) ${MN_HOSTS[1]} cannot see the file rank 0 (host ${MN_HOSTS[0]}) wrote there" \
  "${args[@]}" run.dir="$D/l"
on 1 umount "$D"; on 2 umount "$D"
echo "PASS node-local checkpoint dir refused"
shared_disk

# ---- 3. another tokenizer on node 2 at the same path ---------------------------------------
"$root/tokenizer" train --vocab-size 266 --output "$tmp/tok_other.json" "$tmp/data/input.txt" >/dev/null
mount_dir 2 "$tmp/tok_other.json" "$tmp/data/tok.json"
sha() { sha256sum "$1" | cut -c1-64; }
refused "$tmp/tok.log" "rank(s) 2, 3 on host(s) ${MN_HOSTS[1]} loaded a different tokenizer than rank 0 (host ${MN_HOSTS[0]}): data.tokenizer = $tmp/data/tok.json has SHA-256" \
  "${args[@]}" run.dir="$D/t"
grep -q "on rank 0 but .* on rank 2" "$tmp/tok.log" || fail "the two SHA-256s are not named"
on 2 umount "$tmp/data/tok.json"
echo "PASS another tokenizer on node 2 refused"

# ---- 4. another config on node 2 at the same path ------------------------------------------
cp "$root/configs/tiny.yaml" "$tmp/cfg.yaml"
sed 's/matrix_lr: 0.02/matrix_lr: 0.03/' "$root/configs/tiny.yaml" >"$tmp/cfg_other.yaml"
! cmp -s "$tmp/cfg.yaml" "$tmp/cfg_other.yaml" || fail "configs/tiny.yaml has no matrix_lr: 0.02 to change"
mount_dir 2 "$tmp/cfg_other.yaml" "$tmp/cfg.yaml"
refused "$tmp/cfg.log" "rank(s) 2, 3 on host(s) ${MN_HOSTS[1]} resolved a different config than rank 0 (host ${MN_HOSTS[0]}): optim.matrix_lr:" \
  "$tmp/cfg.yaml" "${args[@]:1}" run.dir="$D/c"
grep -qE "optim.matrix_lr: 0.02 on rank 0 vs 0.03 on rank 2" "$tmp/cfg.log" || { grep -m1 "different config" "$tmp/cfg.log"; fail "the values are not named"; }
on 2 umount "$tmp/cfg.yaml"
echo "PASS another config on node 2 refused"

# ---- 1. network cut mid-run ------------------------------------------------------------------
# Two detectors race after a cut: kiln's watchdog (dist.timeout_s) and mpirun's own (the rsh
# agent, like ssh with ServerAlive, gives up after KILN_MN_AGENT_MISSES s). When the agent wins,
# mpirun ends the job by itself, quickly. When the watchdog wins (the usual order on a cluster,
# where ssh takes longer), the ranks abort and OpenMPI 4's mpirun hangs in its teardown, waiting
# on the node it cannot reach; launch/pretrain.sh ends it KILN_LAUNCH_GRACE_S after the last local
# rank. The test makes the watchdog win every time (agent: 6 s), so that path is the one tested.
TIMEOUT_S=3
GRACE_S=5
BOUND_S=$(( TIMEOUT_S + GRACE_S + 10 ))  # the watchdog's timeout, the ranks' exit, the launcher's grace
KILN_MN_AGENT_MISSES=6 KILN_LAUNCH_GRACE_S=$GRACE_S \
  launch 4 "$tmp/hostfile" "$tmp/cut.log" "${args[@]}" dist.timeout_s=$TIMEOUT_S run.dir="$D/n" &
job=$!
wait_steps "$H/n" 5 120
t0=$(now_ms)
on 1 ip link set $MN_IF down
wait_job $job $t0 $BOUND_S
{ grep -E "stopped answering|did not complete" "$tmp/cut.log" || true; } | cut -c1-500
echo "link down after step $(last_step "$H/n"): the job ended with exit code $rc after $(secs $ms) s (dist.timeout_s=$TIMEOUT_S, bound $BOUND_S s)"
grep -F "[launch]" "$tmp/cut.log" | tail -1 | cut -c1-300
[ "$rc" != 0 ] || fail "the job exited 0 after the network cut"
[ $ms -lt $(( BOUND_S * 1000 )) ] || fail "the job took $(secs $ms) s to end, bound $BOUND_S s"
grep -qE "^\[rank [01]\] error: \[dist\] [a-z_]+ \(collective #[0-9]+\) did not complete within dist.timeout_s = $TIMEOUT_S s .*: rank 2 \(host ${MN_HOSTS[1]}[^)]*\), rank 3 \(host ${MN_HOSTS[1]}[^)]*\) stopped answering" "$tmp/cut.log" \
  || { tail -20 "$tmp/cut.log"; fail "no message on node 1 naming ranks 2 and 3 on ${MN_HOSTS[1]} as stopped answering"; }
# Node 2's ranks time out as well (they name ranks 0 and 1) and end; nothing of the job is left.
for _ in $(seq 50); do [ -z "$(job_ranks "$D/n")" ] && break; sleep 0.1; done
[ -z "$(job_ranks "$D/n")" ] || { job_ranks "$D/n"; fail "ranks still running 5 s after the job ended"; }
echo "PASS network cut: ended in $(secs $ms) s, naming the ranks that stopped answering"

# ---- 1b. a hung node: its ranks frozen (SIGSTOP), network and orted fine ----------------------
# Nothing but kiln's watchdog can end this job: mpirun sees live processes and open connections.
on 1 ip link set $MN_IF up
# What the cut job left on the nodes (node 2's orted, cut off from its mpirun, lingers; on a
# cluster the scheduler ends it): listed, then killed, so that the next job starts on clean nodes.
for i in 1 2; do
  for p in $(node_pids $i); do
    echo "left by the cut job on node $i: $(ps -o pid=,stat=,pcpu=,comm= -p "$p" 2>/dev/null)"
    kill -9 "$p" 2>/dev/null || true
  done
done
BOUND_S=$(( TIMEOUT_S + 10 ))  # network fine: mpirun's teardown reaches node 2 at once
launch 4 "$tmp/hostfile" "$tmp/hung.log" "${args[@]}" dist.timeout_s=$TIMEOUT_S run.dir="$D/h" &
job=$!
( wait_steps "$H/h" 5 120 ) || { tail -30 "$tmp/hung.log"; fail "the hung-node job did not reach step 5"; }
frozen=$(job_ranks "$D/h" | awk '$3 == 2 { print $1 }' | tr '\n' ' ')
[ -n "$frozen" ] || fail "no ranks on node 2"
t0=$(now_ms)
kill -STOP $frozen
wait_job $job $t0 $BOUND_S
{ grep -E "stopped answering" "$tmp/hung.log" || true; } | head -2 | cut -c1-400
echo "node 2's ranks frozen (pids $frozen) after step $(last_step "$H/h"): the job ended with exit code $rc after $(secs $ms) s (bound $BOUND_S s)"
[ "$rc" != 0 ] || fail "the job exited 0 with node 2's ranks frozen"
grep -qE "^\[rank [01]\] error: \[dist\] .*dist.timeout_s = $TIMEOUT_S s .*: rank 2 \(host ${MN_HOSTS[1]}[^)]*\), rank 3 \(host ${MN_HOSTS[1]}[^)]*\) stopped answering" "$tmp/hung.log" \
  || { tail -20 "$tmp/hung.log"; fail "no message naming ranks 2 and 3 as stopped answering"; }
echo "PASS hung node: ended in $(secs $ms) s by the watchdog, naming ranks 2 and 3"
echo "PASS all multinode fault checks in $(secs $(( $(now_ms) - t_start ))) s"
