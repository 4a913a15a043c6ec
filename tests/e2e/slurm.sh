#!/usr/bin/env bash
# The slurm/ scripts under a real single-node Slurm started here: munged + slurmctld + slurmd
# (Debian's slurm-wlm, as root) on localhost with a generated slurm.conf in a temp dir, then, with
# the real ./pretrain on 2 CPU ranks and a tiny prepared tinyshakespeare dataset:
#  1. slurm/pretrain.sbatch runs to the end (exit 0, job COMPLETED, every step logged once);
#  2. slurm/pretrain_preemptible.sbatch gets the pre-kill USR1 (or TERM), checkpoints, requeues
#     itself and resumes with --resume: its losses equal the uninterrupted run's of 1. bit for bit.
# Skips (77) when Slurm or the data is missing or we are not root. Usage: slurm.sh [REPO_ROOT]
set -euo pipefail
root=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
source "$root/tests/e2e/skip.sh"  # skip: exit 77, a failure under CI=true
fail() { echo "FAIL: $*" >&2; for f in "$tmp"/log/*.log; do echo "== $f"; tail -20 "$f"; done >&2; exit 1; }
for b in slurmctld slurmd munged sbatch scontrol; do
  command -v $b >/dev/null 2>&1 || skip "$b not found: apt-get install slurm-wlm munge (launch/setup.sh does with KILN_SLURM=1)"
done
[ "$(id -u)" = 0 ] || skip "the local Slurm test starts slurmd, which must run as root"

tmp=$(mktemp -d /tmp/kiln_slurm_XXXXXX)
chmod 755 "$tmp"
mkdir -p "$tmp"/{munge,state,spool,log,run}
source "$root/tests/e2e/tiny_data.sh"  # tiny_data, TINY_ARGS, strip_timing
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ -z "${KILN_SLURM_KEEP_LOGS:-}" ] || cp -r "$tmp/log" "$KILN_SLURM_KEEP_LOGS"  # debugging aid
  rm -rf "$tmp"
}
trap cleanup EXIT
tiny_data "$tmp/data"
# Every job trains the same 20 steps (2 ranks x 8 seqs x 64 tokens, one micro-step), so every
# run's losses must equal the first uninterrupted run's, whichever launcher and however stopped.
STEPS=20
targs=("${TINY_ARGS[@]}" train.max_steps=$STEPS train.device_batch_size=8 train.total_batch_size=1024
       checkpoint.every=5 checkpoint.keep_last=0 eval.every=10)

# ---- munge with its own key and socket (never the system's) -----------------------------------
source "$root/tests/e2e/slurm_conf.sh"  # slurm_conf_common, start_munged
sock=$tmp/munge/munge.sock
mpid=$(start_munged "$tmp") \
  || { [ "${CI:-}" = true ] && { echo "FAIL: munged would not start (CI must run this test)"; cat "$tmp/log/munged.log"; exit 1; }
       skip "munged would not start"; }
pids+=("$mpid")

# ---- slurm.conf: one node (this host), ports chosen from our pid to avoid clashes -------------
host=$(hostname -s)
port=$(( 20000 + ($$ % 5000) * 2 ))
{ slurm_conf_common "$tmp" "$sock" "$port"
  cat <<CONF
SlurmctldHost=$host(127.0.0.1)
SlurmdSpoolDir=$tmp/spool
SlurmdPidFile=$tmp/slurmd.pid
SlurmdLogFile=$tmp/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=8 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
} >"$tmp/slurm.conf"
# srun's PMIx client directory under this test's temp dir (mpi.conf beside slurm.conf), not
# /tmp/spmix_appdir_<uid>_<job>.<step>: a stale one there (job ids restart at 1 with every new
# slurmctld state) makes the step fail to launch.
mkdir -p "$tmp/pmix"
echo "PMIxCliTmpDirBase=$tmp/pmix" >"$tmp/mpi.conf"
export SLURM_CONF=$tmp/slurm.conf
slurmctld -c -i -f "$SLURM_CONF" >/dev/null 2>&1 || fail "slurmctld did not start"
wait_pid() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; return 1; }
wait_pid "$tmp/slurmctld.pid" || fail "slurmctld wrote no pid file"
pids+=("$(cat "$tmp/slurmctld.pid")")
slurmd -f "$SLURM_CONF" -N "$host" >/dev/null 2>&1 || fail "slurmd did not start"
wait_pid "$tmp/slurmd.pid" || fail "slurmd wrote no pid file"
pids+=("$(cat "$tmp/slurmd.pid")")
for _ in $(seq 150); do
  sinfo -h -o %t 2>/dev/null | grep -qx idle && break
  sleep 0.2
done
sinfo -h -o %t | grep -qx idle || fail "the node never became idle: $(sinfo 2>&1)"
echo "[slurm-test] Slurm $(sinfo -V) up on $host (port $port); srun --mpi: $(srun --mpi=list 2>&1 | tr '\n' ' ')"

# Both scripts on 2 CPU ranks instead of 8 GPUs; everything else is the scripts' own (their
# default command is $KILN_ROOT/pretrain, the real trainer).
unset KILN_PRETRAIN
export KILN_ROOT=$root
export KILN_LAUNCH_ARGS="--oversubscribe"
res=(--ntasks-per-node=2 --cpus-per-task=1 --gpus-per-node=0 --chdir="$root")

# wait_job ID SECONDS: until the job has left the queue for good (COMPLETED / FAILED / ...).
wait_job() {
  local deadline=$(( $(date +%s) + $2 )) st
  while :; do
    st=$(scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
    case "$st" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) echo "$st"; return 0;; esac
    [ "$(date +%s)" -lt "$deadline" ] || { echo "TIMEOUT_WAITING($st)"; return 0; }
    sleep 0.5
  done
}

# steps_once RUN: metrics.jsonl has exactly one loss record for each step 1..STEPS.
steps_once() {
  diff <(seq 1 $STEPS) <(grep -o '"step":[0-9]*,"loss"' "$1/metrics.jsonl" | grep -o '[0-9]*') >/dev/null
}
# same_losses RUN: its metrics equal the reference run's bit for bit (timing fields removed).
ref=""
same_losses() {
  if [ -z "$ref" ]; then ref=$1; return 0; fi
  diff <(strip_timing "$ref/metrics.jsonl") <(strip_timing "$1/metrics.jsonl") | head -6
  diff -q <(strip_timing "$ref/metrics.jsonl") <(strip_timing "$1/metrics.jsonl") >/dev/null
}

# single LAUNCHER [SCRIPT [sbatch flags]]: the script (slurm/pretrain.sbatch) runs to the end.
single() {
  local l=$1 script=${2:-pretrain.sbatch}; shift $(( $# < 2 ? $# : 2 ))
  local run=$tmp/run/single-$l-$script log=$tmp/log/single-$l-$script.log id st
  id=$(KILN_LAUNCHER=$l KILN_RUN_DIR=$run sbatch --parsable "${res[@]}" "$@" --output="$log" \
    "$root/slurm/$script" "${targs[@]}") || fail "sbatch failed"
  st=$(wait_job "$id" 120)
  tail -3 "$log"
  [ "$st" = COMPLETED ] || fail "job $id (slurm/$script, $l) ended $st"
  grep -q "world 2 " "$log" || fail "slurm/$script did not run on a world of 2"
  steps_once "$run" || fail "slurm/$script did not log steps 1..$STEPS once each"
  grep -q "finished" "$log" || fail "no 'finished' line"
  same_losses "$run" || fail "slurm/$script ($l): losses differ from the first run's ($ref)"
  echo "[slurm-test] PASS single/$l: slurm/$script ran ./pretrain $STEPS steps on 2 ranks, job COMPLETED"
}

# preempt LAUNCHER HOW: slurm/pretrain_preemptible.sbatch is told to stop after step 4 by a
# signal to its batch shell: USR1 (HOW=warn: what --signal=B:USR1@120 sends) or TERM (HOW=term:
# the shell's share of a preemption; the script forwards it as USR1). It must checkpoint, requeue
# itself and resume with --resume; the losses must equal the uninterrupted run's bit for bit.
# (scancel --signal=TERM without --batch cancels the step in Slurm 22.05, so a TERM to every task
# at once is not emulated here; the rank-side duplicate handling is tests/unit/test_signals.cpp,
# and a TERM to one rank is tests/dist/signal_stop.sh.)
preempt() {
  local run=$tmp/run/preempt-$1-$2 log=$tmp/log/preempt-$1-$2.log id st restarts deadline stopped
  id=$(KILN_LAUNCHER=$1 KILN_RUN_DIR=$run sbatch --parsable "${res[@]}" --output="$log" \
    "$root/slurm/pretrain_preemptible.sbatch" "${targs[@]}") || fail "sbatch failed"
  deadline=$(( $(date +%s) + 90 ))
  until grep -q '"step":4,"loss"' "$run/metrics.jsonl" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "preemptible job $id never ran 4 steps"
    sleep 0.05
  done
  if [ "$2" = warn ]; then scancel --batch --signal=USR1 "$id"; else scancel --batch --signal=TERM "$id"; fi
  # A requeued job waits cred_expire (here 5 s, default 120 s) before it may start again, and
  # is then picked up by the next scheduling pass (sched_interval=1 s here, default 60 s).
  st=$(wait_job "$id" 120)
  grep -E "^\[slurm\]|resumed from|stopped by signal" "$log"
  restarts=$(scontrol show job "$id" | grep -o 'Restarts=[0-9]*' | cut -d= -f2)
  [ "$st" = COMPLETED ] || fail "preemptible job $id ($1, $2) ended $st"
  [ "${restarts:-0}" -ge 1 ] || fail "the job was not requeued (Restarts=$restarts)"
  stopped=$(grep -o 'stopped by signal at step [0-9]*' "$log" | grep -o '[0-9]*$') || fail "no 'stopped by signal' line"
  [ "$stopped" -lt $STEPS ] || fail "stopped at step $stopped, not before the end"
  grep -q "requeueing job $id" "$log" || fail "no requeue line in the log"
  grep -q -- "--resume $run/ckpt" "$log" || fail "the second start did not --resume"
  grep -q "resumed from $run/ckpt/$(printf 'step_%08d' "$stopped")" "$log" || fail "did not resume from step $stopped"
  [ ! -e "$run/STOPPED_EARLY" ] || fail "STOPPED_EARLY left after the final run"
  steps_once "$run" || fail "steps not logged exactly once across the requeue"
  same_losses "$run" || fail "preempt ($1, $2): losses differ from the uninterrupted run's ($ref)"
  echo "[slurm-test] PASS preempt/$1/$2: stopped at step $stopped, requeued (Restarts=$restarts), resumed, losses equal the uninterrupted run's"
}

# srun --mpi=pmix is what the scripts pick when Slurm has PMIx (it has here); mpirun is the
# fallback.
launchers=${KILN_SLURM_LAUNCHERS:-srun mpirun}
for l in $launchers; do
  single "$l"
  preempt "$l" warn
done
preempt srun term
# The multi-node script on the one node there is (a smoke test of its launch path only).
single srun pretrain_multinode.sbatch --nodes=1
echo "[slurm-test] all passed"
