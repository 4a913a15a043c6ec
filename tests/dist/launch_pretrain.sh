#!/usr/bin/env bash
# launch/pretrain.sh: runs NGPU ranks of the real ./pretrain (its default command) with the config
# and overrides passed through; the run must report a world of 2 and log every step once. A bad
# NGPU is rejected with usage (exit 2). Needs mpirun and KILN_DATA; bounded by a 120 s timeout.
source "$(dirname "$0")/lib.sh"
set +e; "$root/launch/pretrain.sh" 0 "$root/configs/tiny.yaml" 2>"$tmp/err"; rc=$?; set -e
[ "$rc" = 2 ] && grep -q "NGPU must be a positive integer" "$tmp/err" || fail "NGPU=0 gave rc $rc: $(cat "$tmp/err")"
tiny_data "$tmp/data"
KILN_MPIRUN_ARGS="--oversubscribe" timeout --signal=KILL 120 "$root/launch/pretrain.sh" 2 "${TINY_ARGS[@]}" \
  run.dir="$tmp/run" train.max_steps=6 train.device_batch_size=8 train.total_batch_size=1024 eval.every=0 \
  >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "launch failed"; }
grep -q "world 2 " "$tmp/out" || { cat "$tmp/out"; fail "the run did not report a world of 2"; }
diff <(seq 1 6) <(grep -o '"step":[0-9]*,"loss"' "$tmp/run/metrics.jsonl" | grep -o '[0-9]*') \
  || fail "expected one loss record for each of steps 1..6"
[ -e "$tmp/run/ckpt/step_00000006/DONE" ] || fail "no final checkpoint"
echo "PASS: launch/pretrain.sh 2 ran ./pretrain for 6 steps on a world of 2"

# USR1 to the launcher (mpirun is its child, watched) reaches every rank: a checkpoint, then exit 0
# with STOPPED_EARLY, as the header promises.
KILN_MPIRUN_ARGS="--oversubscribe" timeout --signal=KILL 120 "$root/launch/pretrain.sh" 2 "${TINY_ARGS[@]}" \
  run.dir="$tmp/stop" train.max_steps=100000 train.device_batch_size=8 train.total_batch_size=1024 eval.every=0 \
  checkpoint.every=0 >"$tmp/stop.out" 2>&1 &
job=$!
wait_steps "$tmp/stop" 3 90
kill -USR1 "$(pgrep -P $job)"  # the launcher, under timeout (which passes no USR1 on)
set +e; wait $job; rc=$?; set -e
[ "$rc" = 0 ] || { tail -20 "$tmp/stop.out"; fail "USR1 to launch/pretrain.sh: exit $rc, expected 0"; }
[ -e "$tmp/stop/STOPPED_EARLY" ] && ls "$tmp/stop/ckpt"/step_*/DONE >/dev/null 2>&1 \
  || { tail -20 "$tmp/stop.out"; fail "USR1 to launch/pretrain.sh: no STOPPED_EARLY or no checkpoint"; }
echo "PASS: USR1 to launch/pretrain.sh stopped every rank after a checkpoint (exit 0)"
