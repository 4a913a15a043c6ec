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
