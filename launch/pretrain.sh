#!/usr/bin/env bash
# Pretrain on one node: one process per GPU (or per CPU rank) under mpirun.
#   launch/pretrain.sh NGPU CONFIG [section.key=value ...]
#   launch/pretrain.sh NGPU --resume CKPT_DIR [section.key=value ...]
# Exit code is the job's: 0 when finished or stopped by SIGTERM/SIGUSR1 after a checkpoint
# (then <run.dir>/STOPPED_EARLY exists), non-zero on failure. Environment:
#   KILN_PRETRAIN     the command to run per rank (default: ./pretrain beside this repo's build)
#   KILN_MPIRUN_ARGS  extra mpirun flags (e.g. "--oversubscribe" for more CPU ranks than cores;
#                     several nodes: "--hostfile FILE", NGPU = ranks in all; tests/multinode/)
# mpirun forwards SIGUSR1 to every rank (kill -USR1 <this pid> asks for a checkpoint + stop);
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
exec mpirun "${flags[@]}" "${extra[@]}" "${cmd[@]}" "$@"
