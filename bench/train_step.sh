#!/usr/bin/env bash
# Training tok/s of kiln beside PyTorch eager, same model / batch / optimizers, same machine, one
# run: tiny (4L, 128 wide, ctx 64, batch 16) and shakespeare_char (6L, 384 wide, ctx 256,
# batch 64). Usage: bench/train_step.sh [threads]; builds the bench first. Default 1 thread for
# both: on a 2-core machine shared with other jobs, 2 OpenMP threads spin at barriers and measure
# the scheduler (tiny: 85 ms/step idle, 1000 ms under load), not the code.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-1}
PY=${KILN_PYTHON:-python3}
cmake --build build -j 2 --target bench_train_step > /dev/null
for shape in tiny shakespeare_char; do
  # Alternate the two so that load from other jobs on the machine hits both alike.
  k=$(build/bin/bench_train_step "$shape" "$THREADS")
  p=$("$PY" bench/train_step_ref.py "$shape" "$THREADS")
  echo "$k"
  echo "$p"
  kt=$(sed -n 's/.*tok_per_s=\([0-9]*\).*/\1/p' <<< "$k")
  pt=$(sed -n 's/.*tok_per_s=\([0-9]*\).*/\1/p' <<< "$p")
  awk -v s="$shape" -v k="$kt" -v p="$pt" \
    'BEGIN { printf "%-17s kiln %8d tok/s   pytorch-eager %8d tok/s   kiln/pytorch %.2fx\n", s, k, p, k / p }'
done
