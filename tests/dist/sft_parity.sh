#!/usr/bin/env bash
# `mpirun -np 2 ./sft` with B=4 rows per rank against `./sft` with 2B=8 rows (the same 8
# conversations per step, padded rows of different lengths): the loss over valid targets of the
# whole step makes them equal up to float summation order. Per-step losses, validation losses and
# final weights are compared (tests/dist/compare_runs.py) and printed, beside a wrong setup
# (1 rank, B=4: half the rows per step) that must land far outside the bounds.
source "$(dirname "$0")/lib.sh"
python3 -c "import safetensors.torch" 2>/dev/null || { echo "skipped: python3 without safetensors/torch"; exit 77; }
source "$root/tests/e2e/chat_data.sh"
chat_setup "$tmp"
# Same bounds as tests/dist/parity.sh (pretraining). Measured at tiny_sft's LRs (x 0.02), 12 steps:
# |dloss| 4.9e-7, |dval| 6e-8, |dweight| 1.2e-5; the wrong setup: |dloss| 3.5, |dweight| 6.9e-2. (At
# x 1 LRs one embedding row of a rare byte differed by 1.3e-3, all other tensors by <= 5e-7: AdamW
# normalises that row's near-zero gradient, so its rounding noise becomes a visible update.)
# With 128-token rows most GSM8K conversations are cut before their answer: fully masked rows,
# micro-batches and even whole steps (loss 0) occur here and must not break the parity.
LOSS_BOUND=1e-5 WEIGHT_BOUND=3e-4 WRONG_LOSS=1e-2 WRONG_WEIGHT=1e-3
steps=12
args=("${SFT_ARGS[@]}" init.from="$tmp/base/ckpt" train.max_steps=$steps train.total_batch_size=1024
      checkpoint.every=0 checkpoint.keep_last=0 eval.every=6)
"$root/tests/run_mpi.sh" 2 "$root/sft" "${args[@]}" train.device_batch_size=4 run.dir="$tmp/np2" \
  >"$tmp/np2.log" 2>&1 || { cat "$tmp/np2.log"; fail "2-rank run"; }
grep -q "1024 tokens per step = 2 ranks x 4 seqs x 128 tokens x 1 accumulation" "$tmp/np2.log" || fail "not 2 x 4 rows"
"$root/sft" "${args[@]}" train.device_batch_size=8 run.dir="$tmp/np1" >"$tmp/np1.log" 2>&1 \
  || { cat "$tmp/np1.log"; fail "1-rank run"; }
"$root/sft" "${args[@]}" train.device_batch_size=4 train.total_batch_size=512 run.dir="$tmp/wrong" \
  >"$tmp/wrong.log" 2>&1 || { cat "$tmp/wrong.log"; fail "1-rank run with B rows"; }
check_parity "$tmp/np2" "$tmp/np1" "$tmp/wrong" $steps sft
echo "PASS: mpirun -np 2 ./sft with B rows per rank matches ./sft with 2B rows"
