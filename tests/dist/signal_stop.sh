#!/usr/bin/env bash
# SIGUSR1 to ONE rank of a 2-rank job (the stand-in trainer, real dist code) makes both ranks stop
# at the same step, checkpoint, write STOPPED_EARLY and exit 0; --resume then runs exactly the
# remaining steps (every step once). Needs mpirun; bounded by run_mpi.sh's 240 s timeout.
source "$(dirname "$0")/lib.sh"
fake=$1
run=$tmp/run
"$root/tests/run_mpi.sh" 2 "$fake" "$root/configs/tiny.yaml" run.dir="$run" train.max_steps=60 \
  checkpoint.every=7 probe.step_ms=50 >"$tmp/out1" 2>&1 &
job=$!
wait_for "$run/pids/rank_1" 60
wait_steps "$run" 10 60
kill -USR1 "$(cat "$run/pids/rank_1")"
set +e; wait "$job"; rc=$?; set -e
cat "$tmp/out1"
[ "$rc" = 0 ] || fail "stopped job exited $rc, expected 0"
[ -e "$run/STOPPED_EARLY" ] || fail "no STOPPED_EARLY marker"
s0=$(cat "$run/stopped_rank_0"); s1=$(cat "$run/stopped_rank_1")
[ "$s0" = "$s1" ] || fail "ranks stopped at different steps: $s0 vs $s1"
[ "$s0" -lt 60 ] || fail "the job ran to the end instead of stopping ($s0)"
[ -e "$run/ckpt/$(printf 'step_%08d' "$s0")/DONE" ] || fail "no complete checkpoint at step $s0"
echo "both ranks stopped before step $s0 and checkpointed"

rm -f "$run/STOPPED_EARLY"
"$root/tests/run_mpi.sh" 2 "$fake" --resume "$run/ckpt" run.dir="$run" train.max_steps=60 probe.step_ms=1 \
  >"$tmp/out2" 2>&1 || { cat "$tmp/out2"; fail "resumed job failed"; }
[ ! -e "$run/STOPPED_EARLY" ] || fail "resumed run left a STOPPED_EARLY marker"
diff <(seq 0 59 | sed 's/.*/step & world 2/') "$run/steps.txt" || fail "steps were not run exactly once each"
echo "PASS: signal on one rank -> agreed stop at step $s0, exit 0, resume completed steps $s0..59"
