#!/usr/bin/env bash
# Non-finite gradients never reach the weights (issue 11, hole 1), through the real ./pretrain:
# KILN_NAN_GRAD_STEP=5 poisons one gradient of step 5 after the gradient sync, with clipping off
# (where the norm used not to be computed at all). The run must stop with a message naming step
# 5, leave checkpoints 1..4 only, with step 4's weights equal to an uninterrupted run's, and a
# plain --resume must finish the run bit for bit like the uninterrupted one. With
# train.skip_nonfinite=true the step is skipped and logged, and its weights equal step 4's.
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data, TINY_ARGS, strip_timing
e2e_tmp  # tmp (removed on exit), fail

tiny_data "$tmp"
args=("${TINY_ARGS[@]}" train.max_steps=8 train.device_batch_size=8 train.total_batch_size=1024 train.grad_clip=0
      checkpoint.every=1 checkpoint.keep_last=0 eval.every=0)
./pretrain "${args[@]}" run.dir="$tmp/a" >"$tmp/a.log" 2>&1 || { cat "$tmp/a.log"; fail "uninterrupted run"; }

KILN_NAN_GRAD_STEP=5 ./pretrain "${args[@]}" run.dir="$tmp/b" >"$tmp/b.log" 2>&1 && fail "a NaN gradient did not stop the run"
grep -q "step 5: the gradient norm is nan" "$tmp/b.log" || { tail -5 "$tmp/b.log"; fail "the message does not name step 5"; }
have=$(cd "$tmp/b/ckpt" && echo step_*)
[ "$have" = "step_00000001 step_00000002 step_00000003 step_00000004" ] || fail "checkpoints after the NaN: $have"
cmp -s "$tmp/a/ckpt/step_00000004/model.safetensors" "$tmp/b/ckpt/step_00000004/model.safetensors" \
  || fail "step 4's weights differ from the uninterrupted run's"
./pretrain --resume "$tmp/b/ckpt" >"$tmp/b2.log" 2>&1 || { tail -5 "$tmp/b2.log"; fail "--resume after the NaN stop"; }
grep -q "resumed from .*step_00000004" "$tmp/b2.log" || fail "did not resume from step 4"
diff <(strip_timing "$tmp/a/metrics.jsonl") <(strip_timing "$tmp/b/metrics.jsonl") >/dev/null \
  || fail "losses after the resume differ from the uninterrupted run"
cmp -s "$tmp/a/ckpt/step_00000008/model.safetensors" "$tmp/b/ckpt/step_00000008/model.safetensors" \
  || fail "final weights differ from the uninterrupted run"

KILN_NAN_GRAD_STEP=5 ./pretrain "${args[@]}" train.skip_nonfinite=true run.dir="$tmp/c" >"$tmp/c.log" 2>&1 \
  || { tail -5 "$tmp/c.log"; fail "skip_nonfinite run"; }
grep -q "step 5: the gradient norm is nan.*step skipped" "$tmp/c.log" || fail "the skip is not logged"
grep -q '"step":5,.*"skipped":true' "$tmp/c/metrics.jsonl" || fail "metrics.jsonl does not mark step 5 skipped"
cmp -s "$tmp/c/ckpt/step_00000004/model.safetensors" "$tmp/c/ckpt/step_00000005/model.safetensors" \
  || fail "the skipped step changed the weights"
cmp -s "$tmp/c/ckpt/step_00000005/model.safetensors" "$tmp/c/ckpt/step_00000006/model.safetensors" \
  && fail "the step after the skip did not train"
echo "ok: NaN gradient at step 5 (clipping off): stopped naming step 5, checkpoints 1..4 kept (step 4 = uninterrupted),"
echo "    --resume finished bit for bit like the uninterrupted run; with skip_nonfinite the step was skipped and logged"
