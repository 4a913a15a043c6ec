#!/usr/bin/env bash
# Training tok/s of kiln beside PyTorch eager and torch.compile (inductor, CPU), same model /
# batch / optimizers, same machine, one run: tiny (4L, 128 wide, ctx 64, batch 16) and
# shakespeare_char (6L, 384 wide, ctx 256, batch 64).
# Usage: bench/train_step.sh [--before BUILD_DIR] [threads] [--profile]; builds the bench first.
# Default 1 thread for all: on a 2-core machine shared with other jobs, 2 OpenMP threads spin at
# barriers and measure the scheduler (tiny: 85 ms/step idle, 1000 ms under load), not the code.
# --before BUILD_DIR adds the same bench from an older build (BUILD_DIR/bin/bench_train_step) as a
# column, run interleaved with the others. --profile adds the profiler's table of kiln's step
# (bench_train_step --profile 1) for each shape, and of the older build's with --before.
set -euo pipefail
cd "$(dirname "$0")/.."
before=
if [ "${1:-}" = --before ]; then before=$2; shift 2; fi
THREADS=${1:-1}
PROFILE=0
[ "${2:-}" = --profile ] && PROFILE=1
PY=${KILN_PYTHON:-python3}
cmake --build build -j 2 --target bench_train_step > /dev/null
summary=()
tps() { sed -n 's/.*tok_per_s=\([0-9]*\).*/\1/p' <<< "$1"; }
for shape in tiny shakespeare_char; do
  # Interleave them so that load from other jobs on the machine hits all alike.
  k=$(build/bin/bench_train_step "$shape" "$THREADS")
  b=
  [ -z "$before" ] || b=$("$before/bin/bench_train_step" "$shape" "$THREADS")
  p=$("$PY" bench/train_step_ref.py "$shape" --threads "$THREADS")
  c=$("$PY" bench/train_step_ref.py "$shape" --threads "$THREADS" --compile inductor)
  echo "$k"
  [ -z "$b" ] || echo "before: $b"
  echo "$p"
  echo "$c"
  summary+=("$(awk -v s="$shape" -v k="$(tps "$k")" -v b="$(tps "$b")" -v p="$(tps "$p")" -v c="$(tps "$c")" -v t="$THREADS" 'BEGIN {
    printf "%-17s %d thr  kiln %7d tok/s  eager %7d  compile %7d  kiln/eager %.2fx  kiln/compile %.2fx", s, t, k, p, c, k / p, k / c
    if (b != "") printf "  | before: kiln %7d  kiln/eager %.2fx  kiln/compile %.2fx  after/before %.2fx", b, b / p, b / c, k / b }')")
  if [ "$PROFILE" = 1 ]; then
    build/bin/bench_train_step "$shape" "$THREADS" 1 --warmup 1 --profile 1 | grep '^profile:'
    [ -z "$before" ] || "$before/bin/bench_train_step" "$shape" "$THREADS" 1 --warmup 1 --profile 1 | grep '^profile:' | sed 's/^profile:/before profile:/'
  fi
done
printf '%s\n' "${summary[@]}"
