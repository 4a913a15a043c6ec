#!/usr/bin/env bash
# Training tok/s of kiln beside PyTorch eager and torch.compile (inductor, CPU), same model /
# batch / optimizers, same machine, one run: tiny (4L, 128 wide, ctx 64, batch 16) and
# shakespeare_char (6L, 384 wide, ctx 256, batch 64).
# Usage: bench/train_step.sh [threads] [--profile]; builds the bench first. Default 1 thread for
# all: on a 2-core machine shared with other jobs, 2 OpenMP threads spin at barriers and measure
# the scheduler (tiny: 85 ms/step idle, 1000 ms under load), not the code. --profile adds the
# profiler's table of kiln's step (bench_train_step --profile 1) for each shape.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-1}
PROFILE=0
[ "${2:-}" = --profile ] && PROFILE=1
PY=${KILN_PYTHON:-python3}
cmake --build build -j 2 --target bench_train_step > /dev/null
summary=()
for shape in tiny shakespeare_char; do
  # Interleave the three so that load from other jobs on the machine hits all alike.
  k=$(build/bin/bench_train_step "$shape" "$THREADS")
  p=$("$PY" bench/train_step_ref.py "$shape" --threads "$THREADS")
  c=$("$PY" bench/train_step_ref.py "$shape" --threads "$THREADS" --compile inductor)
  echo "$k"
  echo "$p"
  echo "$c"
  kt=$(sed -n 's/.*tok_per_s=\([0-9]*\).*/\1/p' <<< "$k")
  pt=$(sed -n 's/.*tok_per_s=\([0-9]*\).*/\1/p' <<< "$p")
  ct=$(sed -n 's/.*tok_per_s=\([0-9]*\).*/\1/p' <<< "$c")
  summary+=("$(awk -v s="$shape" -v k="$kt" -v p="$pt" -v c="$ct" -v t="$THREADS" 'BEGIN {
    printf "%-17s %d thr  kiln %7d tok/s  eager %7d  compile %7d  kiln/eager %.2fx  kiln/compile %.2fx", s, t, k, p, c, k / p, k / c }')")
  if [ "$PROFILE" = 1 ]; then
    build/bin/bench_train_step "$shape" "$THREADS" 1 --warmup 1 --profile 1 | grep '^profile:'
  fi
done
printf '%s\n' "${summary[@]}"
