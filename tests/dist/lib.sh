# Helpers for the shell-driven 2-rank tests (sourced): a temp dir removed on exit, waiting for
# a file with a deadline, and failing with a message. Every wait is bounded; nothing may hang CI.
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
# Same skip rule as tests/run_mpi.sh: mpirun refuses root outside CI.
if [ "$(id -u)" = 0 ] && [ "${CI:-}" != true ] && [ "${KILN_TEST_ALLOW_ROOT:-}" != 1 ]; then
  echo "skipped: mpirun refuses to run as root; set CI=true or KILN_TEST_ALLOW_ROOT=1" >&2
  exit 77
fi
# wait_steps RUN_DIR N SECONDS: until the stand-in trainer has logged N steps.
wait_steps() {
  local deadline=$(( $(date +%s) + $3 ))
  until [ "$(cat "$1/steps.txt" 2>/dev/null | wc -l)" -ge "$2" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after $3 s waiting for $2 steps in $1"
    sleep 0.05
  done
}
