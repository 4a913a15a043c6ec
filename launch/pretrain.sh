#!/usr/bin/env bash
# Pretrain on one node: one process per GPU (or per CPU rank) under mpirun.
#   launch/pretrain.sh NGPU CONFIG [section.key=value ...]
#   launch/pretrain.sh NGPU --resume CKPT_DIR [section.key=value ...]
# Exit code is the job's: 0 when finished or stopped by SIGTERM/SIGUSR1 after a checkpoint
# (then <run.dir>/STOPPED_EARLY exists), non-zero on failure. Environment:
#   KILN_PRETRAIN     the command to run per rank (default: ./pretrain beside this repo's build)
#   KILN_MPIRUN_ARGS  extra mpirun flags (e.g. "--oversubscribe" for more CPU ranks than cores;
#                     several nodes: "--hostfile FILE", NGPU = ranks in all; tests/multinode/)
#   KILN_LAUNCH_GRACE_S  how long mpirun may outlive every rank on this node before it is ended
#                     (default 10; see below)
# mpirun forwards SIGUSR1 to every rank (kill -USR1 <this pid> asks for a checkpoint + stop; this
# script passes it to mpirun);
# SIGTERM to mpirun kills the ranks, so send USR1 for a graceful stop.
set -euo pipefail
usage() { echo "usage: $0 NGPU CONFIG [section.key=value ...] | $0 NGPU --resume CKPT_DIR [...]" >&2; exit 2; }
[ $# -ge 2 ] || usage
ngpu=$1; shift
[[ "$ngpu" =~ ^[1-9][0-9]*$ ]] || { echo "error: NGPU must be a positive integer, got '$ngpu'" >&2; usage; }
root=$(cd "$(dirname "$0")/.." && pwd)
read -r -a cmd <<<"${KILN_PRETRAIN:-$root/pretrain}"
command -v "${cmd[0]}" >/dev/null 2>&1 || [ -x "${cmd[0]}" ] || {
  echo "error: ${cmd[0]} not found; build first (cmake --build build) or set KILN_PRETRAIN" >&2; exit 2; }
command -v mpirun >/dev/null 2>&1 || { echo "error: mpirun not found; run ./launch/setup.sh (OpenMPI)" >&2; exit 2; }

flags=(-np "$ngpu" --bind-to none)
# mpirun refuses root (containers often are root): allow it explicitly, it is our own job.
[ "$(id -u)" = 0 ] && flags+=(--allow-run-as-root)
# CPU ranks: split the cores between ranks unless the user chose (GPU runs barely use them).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / ngpu > 0 ? $(nproc) / ngpu : 1 ))}
read -r -a extra <<<"${KILN_MPIRUN_ARGS:-}"
echo "[launch] mpirun ${flags[*]} ${extra[*]} ${cmd[*]} $*" >&2

# mpirun runs as a child, watched: OpenMPI 4's mpirun can hang for good in its teardown when a
# node became unreachable (network cut) after the ranks aborted: it waits for that node's daemon
# to confirm the kill, and a later ssh failure no longer ends the wait (tests/multinode/faults.sh
# shows it). Every rank on this node ending while mpirun stays means the job is over: after
# KILN_LAUNCH_GRACE_S (default 10) seconds of that, mpirun is ended and the job exits 1. A clean
# end takes mpirun milliseconds after its ranks, so the wait never cuts one short. Signals sent to
# this script (USR1: checkpoint and stop; TERM, INT) are passed on to mpirun as before.
grace=${KILN_LAUNCH_GRACE_S:-10}
[[ "$grace" =~ ^[0-9]+$ ]] || { echo "error: KILN_LAUNCH_GRACE_S must be a whole number of seconds, got '$grace'" >&2; exit 2; }
mpirun "${flags[@]}" "${extra[@]}" "${cmd[@]}" "$@" &
mp=$!
for sig in USR1 TERM INT HUP; do trap "kill -$sig $mp 2>/dev/null" $sig; done
# local_ranks: mpirun's children that are ranks (they carry OMPI_COMM_WORLD_RANK; ssh/orted do not).
local_ranks() {
  local c n=0
  for c in $(pgrep -P $mp 2>/dev/null); do
    grep -qa OMPI_COMM_WORLD_RANK= /proc/$c/environ 2>/dev/null && n=$(( n + 1 ))
  done
  echo $n
}
seen=0 gone_at=""
while kill -0 $mp 2>/dev/null; do
  sleep 0.5 & wait $! 2>/dev/null || true
  if [ "$(local_ranks)" -gt 0 ]; then seen=1 gone_at=""
  elif [ $seen = 1 ]; then
    gone_at=${gone_at:-$SECONDS}
    if [ $(( SECONDS - gone_at )) -ge "$grace" ] && kill -0 $mp 2>/dev/null; then
      echo "[launch] every rank on this node ended ${grace} s ago but mpirun is still running (it cannot reach a node to finish its teardown): ending mpirun; the job failed" >&2
      kill -TERM $mp 2>/dev/null; sleep 2; kill -KILL $mp 2>/dev/null
      wait $mp 2>/dev/null || true
      exit 1
    fi
  fi
done
rc=0
while :; do wait $mp && rc=0 || rc=$?; kill -0 $mp 2>/dev/null || break; done
exit $rc
