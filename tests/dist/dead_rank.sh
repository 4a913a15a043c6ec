#!/usr/bin/env bash
# A rank of the real ./pretrain (2 ranks under mpirun) that dies by SIGKILL mid-run takes the whole
# job down with a non-zero exit within BOUND_S=30 s (observed: see the echo; about 1 s): mpirun
# sees the dead process and kills the survivor, which is blocked in the gradient all-reduce. A
# hang would run into run_mpi.sh's 240 s timeout and fail the bound. Needs mpirun and KILN_DATA.
source "$(dirname "$0")/lib.sh"
BOUND_S=30
tiny_data "$tmp/data"
run=$tmp/run
"$root/tests/run_mpi.sh" 2 "$root/pretrain" "${TINY_ARGS[@]}" train.max_steps=100000 train.device_batch_size=8 \
  train.total_batch_size=1024 checkpoint.every=0 eval.every=0 run.dir="$run" >"$tmp/out" 2>&1 &
job=$!
wait_steps "$run" 5 120
p0=$(rank_pid "$run" 0) || fail "no rank 0 process"
p1=$(rank_pid "$run" 1) || fail "no rank 1 process"
t0=$(date +%s%3N)
kill -KILL "$p1"
set +e; wait "$job"; rc=$?; set -e
ms=$(( $(date +%s%3N) - t0 )); dt=$(( ms / 1000 )).$(printf %03d $(( ms % 1000 )))
tail -5 "$tmp/out"
echo "job exit code $rc, ${dt} s after SIGKILL of rank 1 at step $(last_step "$run")"
[ "$rc" != 0 ] || fail "the job exited 0 although a rank was killed"
for _ in $(seq 50); do kill -0 "$p0" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$p0" 2>/dev/null; then ps -o pid,stat,etime,cmd -p "$p0" >&2; fail "rank 0 ($p0) outlived mpirun by 5 s"; fi
[ "$ms" -lt $(( BOUND_S * 1000 )) ] || fail "took ${dt} s, bound is ${BOUND_S} s"
echo "PASS: dead rank -> job exit $rc within ${dt} s (bound ${BOUND_S} s)"
