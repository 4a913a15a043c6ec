#!/usr/bin/env bash
# A rank that dies (SIGKILL) takes the whole 2-rank job down with a non-zero exit within a bound
# (BOUND_S=30; observed ~2 s): mpirun sees the dead process and kills the survivor, which is
# blocked in a collective; mpirun exits 137 (128+SIGKILL, the dead rank's). A hang would run into
# run_mpi.sh's 240 s timeout and fail the time bound here.
source "$(dirname "$0")/lib.sh"
fake=$1
BOUND_S=30
run=$tmp/run
"$root/tests/run_mpi.sh" 2 "$fake" "$root/configs/tiny.yaml" run.dir="$run" train.max_steps=100000 \
  probe.step_ms=20 >"$tmp/out" 2>&1 &
job=$!
wait_for "$run/pids/rank_1" 60
wait_steps "$run" 5 60
t0=$(date +%s%3N)
kill -KILL "$(cat "$run/pids/rank_1")"
set +e; wait "$job"; rc=$?; set -e
ms=$(( $(date +%s%3N) - t0 )); dt=$(( ms / 1000 )).$(printf %03d $(( ms % 1000 )))
tail -5 "$tmp/out"
echo "job exit code $rc, ${dt} s after SIGKILL of rank 1"
[ "$rc" != 0 ] || fail "the job exited 0 although a rank was killed"
p0=$(cat "$run/pids/rank_0")
for _ in $(seq 50); do kill -0 "$p0" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$p0" 2>/dev/null; then ps -o pid,stat,etime,cmd -p "$p0" >&2; fail "rank 0 ($p0) outlived mpirun by 5 s"; fi
[ "$ms" -lt $(( BOUND_S * 1000 )) ] || fail "took ${dt} s, bound is ${BOUND_S} s"
echo "PASS: dead rank -> job exit $rc within ${dt} s (bound ${BOUND_S} s)"
