#!/usr/bin/env bash
# The Trainer's step against an independent PyTorch reference (tests/reference/train_step_ref.py,
# written from the math): ./pretrain runs 10 steps of the tiny model with 2 accumulation
# micro-steps, clipping on (and active), Muon + AdamW, a warmup of 3 and a warmdown of 3 steps,
# a checkpoint after every step; ./pretrain with max_steps=0 gives the initial weights. The
# reference recomputes step 1 from the initial weights and steps 2, 3 from the previous step's
# weights and optimizer state (loss, gradient norm, every weight after the step) and the LR
# multiplier and Muon momentum that every step ran with (read from the checkpoints' optimizer
# state, not from the log) against the formulas. Needs ../shared/data and KILN_PYTHON with torch.
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data, TINY_ARGS
py=${KILN_PYTHON:-python3}
"$py" -c "import torch, safetensors, h5py" 2>/dev/null || { echo "skipped: $py lacks torch/safetensors/h5py"; exit 77; }
e2e_tmp  # tmp (removed on exit), fail

tiny_data "$tmp"
args=("${TINY_ARGS[@]}" train.device_batch_size=8 train.total_batch_size=1024 train.grad_clip=0.25
      optim.warmup_ratio=0.3 optim.warmdown_ratio=0.3 optim.final_lr_frac=0.1 optim.muon_momentum_warmup=4
      optim.adam_eps=1e-4 checkpoint.every=1 checkpoint.keep_last=0 eval.every=0)
./pretrain "${args[@]}" train.max_steps=0 run.dir="$tmp/init" >"$tmp/init.log" 2>&1 || { cat "$tmp/init.log"; fail "init run"; }
./pretrain "${args[@]}" train.max_steps=10 run.dir="$tmp/run" >"$tmp/run.log" 2>&1 || { cat "$tmp/run.log"; fail "10-step run"; }
grep -q "(2 micro-steps)" "$tmp/run.log" || fail "the run does not accumulate 2 micro-steps"
"$py" tests/reference/train_step_ref.py "$tmp/init/ckpt/step_00000000" "$tmp/run/ckpt" "$tmp/shards/train_*.h5" 265 \
  || fail "kiln's training step differs from the PyTorch reference"
echo "ok: loss, gradient norm, every weight after steps 1-3 and the schedule of all 10 steps match the reference"
