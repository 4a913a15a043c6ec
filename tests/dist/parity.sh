#!/usr/bin/env bash
# `mpirun -np 2 ./pretrain` with device batch B=8 against `./pretrain` with 2B=16 (same total batch
# 2048 tokens, so 2 micro-steps each): per-step losses, validation losses and final weights must
# agree within float summation-order bounds, while a wrong setup (1 rank, batch B: half the data
# per step) must land far outside them. Needs mpirun, python3 with torch + safetensors, KILN_DATA.
source "$(dirname "$0")/lib.sh"
py=${KILN_PYTHON:-python3}  # setup's .venv python (ctest passes it), not whatever python3 is first on PATH
"$py" -c "import safetensors.torch" 2>/dev/null || { echo "skipped: $py without safetensors/torch"; exit 77; }
tiny_data "$tmp/data"
# Measured (float32, 20 steps, 1 BLAS thread per rank vs 2 threads): max |dloss| 6e-7, max |dval_loss|
# 2e-8, max |dweight| 2.4e-5. Bounds ~15x above that; the wrong setup measured |dloss| 0.33, |dval|
# 0.11, |dweight| 7.8, i.e. >= 1000x the bounds, so a sharding or averaging bug cannot pass.
LOSS_BOUND=1e-5 WEIGHT_BOUND=3e-4 WRONG_LOSS=1e-2 WRONG_WEIGHT=1e-1
steps=20
args=("${TINY_ARGS[@]}" train.max_steps=$steps train.total_batch_size=2048 checkpoint.every=0
      checkpoint.keep_last=0 eval.every=10)
"$root/tests/run_mpi.sh" 2 "$root/pretrain" "${args[@]}" train.device_batch_size=8 run.dir="$tmp/np2" \
  >"$tmp/np2.log" 2>&1 || { cat "$tmp/np2.log"; fail "2-rank run"; }
grep -q "2048 tokens per step = 2 ranks x 8 seqs x 64 tokens x 2 accumulation" "$tmp/np2.log" \
  || fail "the 2-rank run did not use 2 ranks x 8 seqs x 2 micro-steps"
"$root/pretrain" "${args[@]}" train.device_batch_size=16 run.dir="$tmp/np1" >"$tmp/np1.log" 2>&1 \
  || { cat "$tmp/np1.log"; fail "1-rank run"; }
"$root/pretrain" "${args[@]}" train.device_batch_size=8 train.total_batch_size=1024 run.dir="$tmp/wrong" \
  >"$tmp/wrong.log" 2>&1 || { cat "$tmp/wrong.log"; fail "1-rank run with batch B"; }

check_parity "$tmp/np2" "$tmp/np1" "$tmp/wrong" $steps pretrain
echo "PASS: 2 ranks with batch B match 1 rank with batch 2B within the summation-order bounds"
