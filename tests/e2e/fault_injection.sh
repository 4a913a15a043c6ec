#!/usr/bin/env bash
# Fault injection inside save_checkpoint (issue 11): KILN_FAULT=<point>@3 makes ./pretrain die
# (_exit, as a crash) at that point of the save of step 3: after the tensor files are written,
# before their fsync, before DONE, before the rename into place, and in the middle of keep_last
# pruning. (Between the two renames of a re-save is covered by CheckpointFaults.* in
# tests/unit/test_checkpoint_recovery.cpp: a normal run never re-saves a step.) Each time, the
# newest complete checkpoint must load (--resume from the expected step), the next run must save
# normally, finish with the same losses and weights as an uninterrupted run, and leave no
# temporary directories behind. Needs ../shared/data.
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data, TINY_ARGS, strip_timing
e2e_tmp  # tmp (removed on exit), fail

tiny_data "$tmp"
args=("${TINY_ARGS[@]}" train.max_steps=5 train.device_batch_size=8 train.total_batch_size=1024
      checkpoint.every=1 checkpoint.keep_last=2 eval.every=0)
./pretrain "${args[@]}" run.dir="$tmp/a" >"$tmp/a.log" 2>&1 || { cat "$tmp/a.log"; fail "uninterrupted run"; }

# point -> the step --resume must find afterwards
for spec in after_tensors:2 before_fsync:2 before_done:2 before_rename:2 during_pruning:3; do
  point=${spec%:*} want=${spec#*:} run=$tmp/$point
  KILN_FAULT=$point@3 ./pretrain "${args[@]}" run.dir="$run" >"$run.log" 2>&1; rc=$?
  [ $rc = 86 ] && grep -q "\[fault\] $point at step 3" "$run.log" || { tail -3 "$run.log"; fail "$point: not injected (rc=$rc)"; }
  ./pretrain --resume "$run/ckpt" >"$run.resume.log" 2>&1 || { tail -5 "$run.resume.log"; fail "$point: resume"; }
  grep -q "resumed from .*step_0000000$want" "$run.resume.log" || fail "$point: did not resume from step $want"
  diff <(strip_timing "$tmp/a/metrics.jsonl") <(strip_timing "$run/metrics.jsonl") >/dev/null || fail "$point: losses differ"
  cmp -s "$tmp/a/ckpt/step_00000005/model.safetensors" "$run/ckpt/step_00000005/model.safetensors" || fail "$point: weights differ"
  [ "$(ls -A "$run/ckpt" | tr '\n' ' ')" = "step_00000004 step_00000005 " ] || fail "$point: leftovers: $(ls -A "$run/ckpt")"
  echo "ok: crash at $point of step 3 -> resumed from step $want, saved normally, final run equal, no leftovers"
done
