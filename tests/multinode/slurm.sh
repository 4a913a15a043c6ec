#!/usr/bin/env bash
# `sbatch --nodes=2 slurm/pretrain_multinode.sbatch` for real across the two namespace nodes of
# tests/multinode/lib.sh: one slurmctld (node 1), a slurmd per node (each its own hostname and
# address, NodeAddr on the veth), one munged whose socket both nodes reach through the file
# system, the run dir on the bind-mounted "shared disk". For each launcher the script can pick
# (srun --mpi=pmix, and mpirun, which starts its daemons through Slurm):
#  1. the job is COMPLETED with 4 ranks, 2 on each node (the log's [dist] lines name both hosts);
#  2. its losses equal those of multinode.train's setup: 4 ranks x B = 1 rank x 4B within the dist
#     parity bounds (a wrong 1 rank x B run lands outside them);
#  3. (srun) scancel --signal=TERM JOB.0, TERM to every rank on both nodes: they agree on one
#     step, checkpoint it, exit 0, the job is COMPLETED with STOPPED_EARLY; the job resubmitted
#     resumes (--resume, chosen by the script) with the uninterrupted job's losses bit for bit.
# Needs root, Slurm + munge (launch/setup.sh with KILN_SLURM=1), mpirun, KILN_DATA.
source "$(dirname "$0")/lib.sh"
for b in slurmctld slurmd munged sbatch scontrol sinfo; do
  command -v $b >/dev/null 2>&1 || skip "$b not found: apt-get install slurm-wlm munge (launch/setup.sh with KILN_SLURM=1)"
done
source "$root/tests/e2e/slurm_conf.sh"  # slurm_conf_common, start_munged
mn_start
mkdir -p "$tmp"/{state,spool,log,run}

# munged runs in node 1 (so the teardown ends it); its socket is a file both nodes see.
on 1 bash -c "source '$root/tests/e2e/slurm_conf.sh'; start_munged '$tmp'" >/dev/null \
  || { cat "$tmp/log/munged.log"; fail "munged would not start"; }
port=$(( 20000 + ($$ % 5000) * 2 ))
{ slurm_conf_common "$tmp" "$tmp/munge/munge.sock" "$port"
  cat <<CONF
SlurmctldHost=${MN_HOSTS[0]}($MN_NET.1)
SlurmdSpoolDir=$tmp/spool/%n
SlurmdPidFile=$tmp/run/slurmd-%n.pid
SlurmdLogFile=$tmp/log/slurmd-%n.log
NodeName=${MN_HOSTS[0]} NodeAddr=$MN_NET.1 CPUs=4 RealMemory=1000 State=UNKNOWN
NodeName=${MN_HOSTS[1]} NodeAddr=$MN_NET.2 CPUs=4 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=${MN_HOSTS[0]},${MN_HOSTS[1]} Default=YES MaxTime=INFINITE State=UP
CONF
} >"$tmp/slurm.conf"
export SLURM_CONF=$tmp/slurm.conf
slurm_fail() { for f in "$tmp"/log/slurm*.log; do echo "== $f"; tail -15 "$f"; done >&2; fail "$*"; }
on 1 slurmctld -c -i -f "$SLURM_CONF" >/dev/null 2>&1 || slurm_fail "slurmctld did not start on node 1"
# Each slurmd reads its own copy of slurm.conf, beside its own mpi.conf: the nodes share one /tmp
# here (a cluster's nodes do not), and srun's PMIx would make the same client directory
# (/tmp/spmix_appdir_<uid>_<job>.<step>) on both; PMIxCliTmpDirBase gives each node its own.
for i in 1 2; do
  mkdir -p "$tmp/conf$i" "$tmp/pmix$i"
  cp "$SLURM_CONF" "$tmp/conf$i/slurm.conf"
  echo "PMIxCliTmpDirBase=$tmp/pmix$i" >"$tmp/conf$i/mpi.conf"
  mkdir -p "$tmp/spool/${MN_HOSTS[$(( i - 1 ))]}"
  on $i slurmd -f "$tmp/conf$i/slurm.conf" -N "${MN_HOSTS[$(( i - 1 ))]}" >/dev/null 2>&1 || slurm_fail "slurmd did not start on node $i"
done
for _ in $(seq 150); do
  [ "$(on 1 sinfo -h -N -o %t 2>/dev/null | grep -cx idle)" = 2 ] && break
  sleep 0.2
done
[ "$(on 1 sinfo -h -N -o %t 2>/dev/null | grep -cx idle)" = 2 ] || slurm_fail "the two nodes never became idle: $(on 1 sinfo -N 2>&1)"
echo "[multinode-slurm] Slurm $(sinfo -V) up: slurmctld on ${MN_HOSTS[0]}, slurmd on ${MN_HOSTS[0]} and ${MN_HOSTS[1]} ($(( ($(now_ms) - t_start) / 1000 )) s)"

steps=12
args=("${TINY_ARGS[@]}" train.max_steps=$steps train.device_batch_size=8 train.total_batch_size=2048
      checkpoint.every=4 checkpoint.keep_last=0 eval.every=6)
# The cluster environment of the ranks (sbatch passes it on): TCP only on the veth, as
# multinode.train's mpirun flags.
mca=(OMPI_MCA_btl=tcp,self OMPI_MCA_btl_tcp_if_include=$MN_IF OMPI_MCA_oob_tcp_if_include=$MN_IF)
export KILN_ROOT=$root OMP_WAIT_POLICY=passive
unset KILN_PRETRAIN KILN_LAUNCH_ARGS
res=(--nodes=2 --ntasks-per-node=2 --cpus-per-task=1 --gpus-per-node=0 --chdir="$root")

# job_state ID SECONDS: waits until job ID has left the queue for good; prints its state.
job_state() {
  local deadline=$(( $(date +%s) + $2 )) st
  while :; do
    st=$(on 1 scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
    case "$st" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) echo "$st"; return 0;; esac
    [ "$(date +%s)" -lt "$deadline" ] || { echo "TIMEOUT_WAITING($st)"; return 0; }
    sleep 0.5
  done
}
submit() {  # submit LAUNCHER RUN LOG: sbatch --nodes=2 of the real script; prints the job id
  on 1 env "${mca[@]}" KILN_LAUNCHER=$1 KILN_RUN_DIR="$D/$2" sbatch --parsable "${res[@]}" --output="$3" \
    "$root/slurm/pretrain_multinode.sbatch" "${args[@]}"
}
two_nodes() {  # two_nodes LOG NODELIST: 4 ranks, 2 on node 1, so 2 on the job's other node
  [ "$2" = "kiln-node[1-2]" ] && grep -q "world 4 (2 on this node, host ${MN_HOSTS[0]})" "$1" \
    || { grep "\[dist\]\|\[slurm\]" "$1"; return 1; }
}

# The references: 1 rank with 4x the batch, and a wrong 1 rank x B (multinode.train's bounds).
"$root/pretrain" "${args[@]}" train.device_batch_size=32 checkpoint.every=0 run.dir="$tmp/np1" >"$tmp/np1.log" 2>&1 \
  || { tail -20 "$tmp/np1.log"; fail "1-rank run"; }
"$root/pretrain" "${args[@]}" train.total_batch_size=512 checkpoint.every=0 run.dir="$tmp/wrong" >"$tmp/wrong.log" 2>&1 \
  || { tail -20 "$tmp/wrong.log"; fail "1-rank run with batch B"; }
LOSS_BOUND=1e-5 WEIGHT_BOUND=3e-4 WRONG_LOSS=1e-2 WRONG_WEIGHT=1e-1 PARITY_N=4

for l in ${KILN_SLURM_LAUNCHERS:-srun mpirun}; do
  # ---- 1 + 2: a whole job across the two nodes --------------------------------------------------
  t0=$(now_ms)
  id=$(submit "$l" "full-$l" "$tmp/full-$l.log") || slurm_fail "sbatch failed ($l)"
  st=$(job_state "$id" 180)
  [ "$st" = COMPLETED ] || { tail -30 "$tmp/full-$l.log"; slurm_fail "job $id ($l) ended $st"; }
  nodes=$(on 1 scontrol show job "$id" | grep -o ' NodeList=[^ ]*' | cut -d= -f2)
  two_nodes "$tmp/full-$l.log" "$nodes" || fail "$l: not 4 ranks on ${MN_HOSTS[*]} (job NodeList=$nodes)"
  grep -q "^\[slurm\] .* finished" "$tmp/full-$l.log" || fail "$l: the script did not say finished"
  check_parity "$H/full-$l" "$tmp/np1" "$tmp/wrong" $steps "sbatch --nodes=2 ($l)"
  echo "[multinode-slurm] PASS $l: job $id COMPLETED on $nodes, 4 ranks, parity with 1 rank x 4B ($(( ($(now_ms) - t0) / 1000 )) s)"

  # ---- 3: TERM to every rank of the job step on both nodes (slurmd delivers it), then resubmit ---
  # srun only: with mpirun the step's tasks are Open MPI's daemons, which end their ranks on TERM
  # instead of passing it on; multinode.train sends TERM to those ranks directly. (A TERM to srun
  # itself, as `scancel --full` gives, makes srun cancel the step in Slurm 22.05.)
  [ "$l" = srun ] || continue
  id=$(submit "$l" "term-$l" "$tmp/term-$l.log") || slurm_fail "sbatch failed ($l)"
  wait_steps "$H/term-$l" 3 120
  on 1 scancel --signal=TERM "$id.0"
  st=$(job_state "$id" 120)
  [ "$st" = COMPLETED ] || { tail -30 "$tmp/term-$l.log"; slurm_fail "$l: after TERM the job ended $st (want exit 0)"; }
  [ -e "$H/term-$l/STOPPED_EARLY" ] || { tail -20 "$tmp/term-$l.log"; fail "$l: no STOPPED_EARLY after TERM"; }
  stopped=$(grep -o 'stopped by signal at step [0-9]*' "$tmp/term-$l.log" | sort -u | grep -o '[0-9]*$') \
    || fail "$l: no 'stopped by signal' line"
  [ "$(wc -l <<<"$stopped")" = 1 ] && [ "$stopped" -lt $steps ] || fail "$l: the ranks did not agree on one step: $stopped"
  id=$(submit "$l" "term-$l" "$tmp/term2-$l.log") || slurm_fail "sbatch failed ($l)"
  st=$(job_state "$id" 180)
  [ "$st" = COMPLETED ] || { tail -30 "$tmp/term2-$l.log"; slurm_fail "$l: the resubmitted job ended $st"; }
  grep -q "resumed from $D/term-$l/ckpt/$(printf 'step_%08d' "$stopped")" "$tmp/term2-$l.log" \
    || { grep -i resum "$tmp/term2-$l.log"; fail "$l: the resubmitted job did not resume from step $stopped"; }
  diff <(strip_timing "$H/full-$l/metrics.jsonl") <(strip_timing "$H/term-$l/metrics.jsonl") >"$tmp/diff" \
    || { head -6 "$tmp/diff"; fail "$l: stopped + resumed losses differ from the uninterrupted job's"; }
  echo "[multinode-slurm] PASS $l: TERM -> all ranks stopped at step $stopped, STOPPED_EARLY, resubmitted job resumed bit-identically"
done
echo "[multinode-slurm] all passed in $(( ($(now_ms) - t_start) / 1000 )) s"
