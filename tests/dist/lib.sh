# Helpers for the shell-driven 2-rank tests of the real ./pretrain (sourced): a temp dir removed on
# exit, bounded waits for a file or a logged step, a rank's pid, and the tiny prepared dataset.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d /tmp/kiln_dist_XXXXXX)
cleanup_hooks=()
cleanup() { for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# wait_for FILE SECONDS: until FILE exists (and is non-empty).
wait_for() {
  local f=$1 deadline=$(( $(date +%s) + $2 ))
  until [ -s "$f" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after $2 s waiting for $f"
    sleep 0.1
  done
}
source "$root/tests/e2e/tiny_data.sh"  # tiny_data, TINY_ARGS, strip_timing
# rank_pid RUN_DIR RANK: the pid of that rank's ./pretrain (run.dir=RUN_DIR on its command line,
# OMPI_COMM_WORLD_RANK=RANK in its environment; mpirun and timeout have no rank).
rank_pid() {
  local p
  for p in $(pgrep -f "run.dir=$1( |$)"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return 0; }
  done
  return 1
}
source "$root/tests/dist/check_parity.sh"  # check_parity
# step_dir RUN STEP: that step's checkpoint directory.
step_dir() { printf "%s/ckpt/step_%08d" "$1" "$2"; }
# kill_ranks RUN SIGNAL: that signal to every rank of the 2-rank job writing RUN.
kill_ranks() { local r p; for r in 0 1; do p=$(rank_pid "$1" $r) && kill "-$2" "$p" 2>/dev/null || true; done; }
# reshard_one RUN STEP DST: RUN's step-STEP checkpoint (a 2-rank run's) resumed on 1 rank to the end
# in DST (its metrics.jsonl starts as RUN's up to STEP, for compare_runs.py); log in DST.log; fails
# unless the resume resharded 2 -> 1.
reshard_one() {
  local run=$1 step=$2 dst=$3
  mkdir -p "$dst/ckpt"
  cp -r "$(step_dir "$run" "$step")" "$dst/ckpt/"
  "${KILN_PYTHON:-python3}" -c "
import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], 'w') as o:
    for line in f:
        if json.loads(line).get('step', 0) <= int(sys.argv[3]): o.write(line)" "$run/metrics.jsonl" "$dst/metrics.jsonl" "$step"
  "$root/pretrain" --resume "$(step_dir "$dst" "$step")" run.dir="$dst" checkpoint.dir="$dst/ckpt" >"$dst.log" 2>&1 \
    || { tail -20 "$dst.log"; fail "1-rank resume of $(step_dir "$run" "$step")"; }
  grep -q "resharded: saved by 2 rank(s), resumed on 1" "$dst.log" || { grep resharded "$dst.log"; fail "no 2 -> 1 reshard"; }
}
