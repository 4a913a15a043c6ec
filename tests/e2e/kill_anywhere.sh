#!/usr/bin/env bash
# Kill anywhere (issue 11): ./pretrain with a checkpoint after every step is SIGKILLed at 20
# random instants (a few during start-up, the rest at a random delay once it trains, which with a
# checkpoint every step lands inside checkpoint writes too: counted below from the .tmp/.old/
# .prune leftovers each kill leaves) and resumed with --resume every time. Every launch must end
# by our SIGKILL or succeed (never an error of its own), and the final losses and weights must
# equal an uninterrupted run bit for bit. KILLS and SEED may be set; needs ../shared/data.
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data, TINY_ARGS, strip_timing
e2e_tmp  # tmp (removed on exit), fail
KILLS=${KILLS:-20}
RANDOM=${SEED:-$$}; echo "seed ${SEED:-$$}"

tiny_data "$tmp"
steps=${STEPS:-40}
args=("${TINY_ARGS[@]}" train.max_steps=$steps train.device_batch_size=8 train.total_batch_size=1024
      checkpoint.every=1 checkpoint.keep_last=2 eval.every=0 log.every=1)
./pretrain "${args[@]}" run.dir="$tmp/a" >"$tmp/a.log" 2>&1 &
pid=$!
until grep -Eq 'step +1/[0-9]+ ' "$tmp/a.log" 2>/dev/null; do kill -0 $pid 2>/dev/null || break; sleep 0.01; done
t1=$(date +%s%N)
wait $pid || { cat "$tmp/a.log"; fail "uninterrupted run"; }
run_ms=$(( ($(date +%s%N) - t1) / 1000000 ))
# Kills land 0..2 step-times after a logged step (a step-time includes its checkpoint; start-up
# excluded), so each launch advances about one step whatever the machine's speed.
step_ms=$(( run_ms / (steps - 1) )); [ $step_ms -ge 20 ] || step_ms=20
echo "uninterrupted run: $run_ms ms for steps 2..$steps (~$step_ms ms per step with its checkpoint)"
final=$(printf "step_%08d" $steps)

kills=0 in_save=0 launches=0
while [ $kills -lt "$KILLS" ]; do
  launches=$((launches + 1))
  log=$tmp/launch_$launches.log
  if [ -n "$(ls "$tmp/b/ckpt" 2>/dev/null | grep '^step_')" ]; then
    resumed=1; ./pretrain --resume "$tmp/b/ckpt" run.dir="$tmp/b" >"$log" 2>&1 &
  else
    resumed=0; ./pretrain "${args[@]}" run.dir="$tmp/b" >"$log" 2>&1 &
  fi
  pid=$!
  if [ $((kills % 5)) = 0 ]; then
    # somewhere in start-up: up to 1 s, but at the latest when the first step is logged
    for _ in $(seq 1 $((RANDOM % 100))); do grep -Eq 'step +[0-9]+/[0-9]+ ' "$log" 2>/dev/null && break; sleep 0.01; done
  else
    for _ in $(seq 1 3000); do grep -Eq 'step +[0-9]+/[0-9]+ ' "$log" 2>/dev/null && break; kill -0 $pid 2>/dev/null || break; sleep 0.01; done
    d=$(( (RANDOM * 32768 + RANDOM) % (2 * step_ms) ))  # into training: steps and checkpoint writes
    sleep "$((d / 1000)).$(printf %03d $((d % 1000)))"
  fi
  if kill -9 $pid 2>/dev/null; then
    wait $pid 2>/dev/null; rc=$?
    [ $rc = 137 ] || { tail -5 "$log"; fail "launch $launches exited $rc before the kill"; }
    kills=$((kills + 1))
    leftovers=$(ls -a "$tmp/b/ckpt" 2>/dev/null | grep -E '^\.step_.*\.(tmp|old|prune)$' | tr '\n' ' ')
    [ -n "$leftovers" ] && in_save=$((in_save + 1))
    echo "kill $kills: after step $(grep -o '"step":[0-9]*,"loss"' "$tmp/b/metrics.jsonl" 2>/dev/null | tail -1 | grep -o '[0-9]*' || echo 0)${leftovers:+, inside a checkpoint write ($leftovers)}"
  else
    wait $pid; rc=$?
    [ $rc = 0 ] || { tail -5 "$log"; fail "launch $launches failed (rc=$rc)"; }
    [ -d "$tmp/b/ckpt/$final" ] && fail "the run finished after $kills kills: make it longer"
  fi
  if [ $resumed = 1 ] && grep -Eq 'step +[0-9]+/[0-9]+ ' "$log" && ! grep -q "resumed from" "$log"; then
    fail "launch $launches trained without resuming"; fi
done
./pretrain --resume "$tmp/b/ckpt" run.dir="$tmp/b" >"$tmp/last.log" 2>&1 || { tail -5 "$tmp/last.log"; fail "final resume"; }
diff <(strip_timing "$tmp/a/metrics.jsonl") <(strip_timing "$tmp/b/metrics.jsonl") >"$tmp/diff" \
  || { head "$tmp/diff"; fail "losses differ from the uninterrupted run"; }
[ "$(grep -c '"loss"' "$tmp/b/metrics.jsonl")" = $steps ] || fail "expected $steps loss records"
for f in model.safetensors optim_rank_00000.safetensors; do
  cmp -s "$tmp/a/ckpt/$final/$f" "$tmp/b/ckpt/$final/$f" || fail "final $f differs from the uninterrupted run"
done
echo "ok: $kills SIGKILLs ($in_save inside a checkpoint write) over $launches launches; every resume succeeded;"
echo "    all $steps losses, the final weights and optimizer state equal the uninterrupted run bit for bit"
