#!/usr/bin/env bash
# Kill anywhere on 2 ranks (issue 11): `mpirun -np 2 ./pretrain` with a checkpoint every step;
# 5 times, SIGKILL one rank (picked at random) 0..2 step-times after it logs a step; mpirun takes
# the job down and it is resumed with --resume. The final losses and weights must equal an
# uninterrupted 2-rank run bit for bit. KILLS and SEED may be set. Needs mpirun and KILN_DATA.
source "$(dirname "$0")/lib.sh"
KILLS=${KILLS:-5}
RANDOM=${SEED:-$$}; echo "seed ${SEED:-$$}"
tiny_data "$tmp/data"
steps=30
args=("${TINY_ARGS[@]}" train.max_steps=$steps train.device_batch_size=8 train.total_batch_size=1024
      checkpoint.every=1 checkpoint.keep_last=2 eval.every=0 log.every=1)
mpi() { "$root/tests/run_mpi.sh" 2 "$root/pretrain" "$@"; }
t0=$(date +%s%N)
mpi "${args[@]}" run.dir="$tmp/a" >"$tmp/a.log" 2>&1 || { tail -20 "$tmp/a.log"; fail "uninterrupted 2-rank run"; }
# Kills land 0..2 step-times (with checkpoint) after a logged step: about one step per launch.
step_ms=$(( ($(date +%s%N) - t0) / 1000000 / steps )); [ $step_ms -ge 20 ] || step_ms=20
final=$(printf "step_%08d" $steps)
run=$tmp/b kills=0 launches=0
while [ $kills -lt "$KILLS" ]; do
  launches=$((launches + 1)); log=$tmp/launch_$launches.log
  if ls "$run/ckpt" 2>/dev/null | grep -q '^step_'; then mpi --resume "$run/ckpt" run.dir="$run" >"$log" 2>&1 &
  else mpi "${args[@]}" run.dir="$run" >"$log" 2>&1 &
  fi
  job=$!
  for _ in $(seq 1 3000); do grep -Eq 'step +[0-9]+/[0-9]+ ' "$log" 2>/dev/null && break; kill -0 $job 2>/dev/null || break; sleep 0.01; done
  d=$(( (RANDOM * 32768 + RANDOM) % (2 * step_ms) )); sleep "$((d / 1000)).$(printf %03d $((d % 1000)))"
  r=$((RANDOM % 2))
  p=$(rank_pid "$run" $r) || { wait $job || true; fail "launch $launches ended before the kill: $(tail -3 "$log")"; }
  kill -KILL "$p"
  set +e; wait $job; rc=$?; set -e
  [ $rc != 0 ] || fail "the job exited 0 although rank $r was killed"
  kills=$((kills + 1))
  echo "kill $kills: rank $r after step $(last_step "$run") -> job exit $rc"
  [ -d "$run/ckpt/$final" ] && fail "the run finished after $kills kills: make it longer"
done
mpi --resume "$run/ckpt" run.dir="$run" >"$tmp/last.log" 2>&1 || { tail -20 "$tmp/last.log"; fail "final resume"; }
grep -q "resumed from" "$tmp/last.log" || fail "the final launch did not resume"
diff <(strip_timing "$tmp/a/metrics.jsonl") <(strip_timing "$run/metrics.jsonl") >"$tmp/diff" \
  || { head "$tmp/diff"; fail "losses differ from the uninterrupted 2-rank run"; }
for f in model.safetensors optim_rank_00000.safetensors optim_rank_00001.safetensors; do
  cmp -s "$tmp/a/ckpt/$final/$f" "$run/ckpt/$final/$f" || fail "final $f differs from the uninterrupted run"
done
echo "PASS: $kills SIGKILLs of one rank over $launches launches; all $steps losses, final weights and both ranks'"
echo "      optimizer state equal the uninterrupted 2-rank run bit for bit"
