#!/usr/bin/env bash
# Training tok/s of nanochat's current model (model.arch nanochat2) against V1 (nanochat) at the
# same shape, CPU, same machine, one run, interleaved so that load from other jobs hits both alike:
# tiny (4L, 128 wide, ctx 64, short window 16) and d6 (6L, 384 wide, ctx 512, batch 8; nanochat's
# rule gives a 128-token short window there).
# Usage: bench/train_step_v2.sh [threads]; builds the bench first. Default 1 thread (see train_step.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-1}
cmake --build build -j 2 --target bench_train_step > /dev/null
summary=()
run() { build/bin/bench_train_step "$@"; }
for shape in tiny d6; do
  if [ "$shape" = tiny ]; then args=(tiny "$THREADS"); v2=(--short-window 16)
  else args=(custom "$THREADS" 3 --layers 6 --width 384 --heads 3 --seq 512 --vocab 265 --batch 8 --warmup 1); v2=(); fi
  a=$(run "${args[@]}")
  b=$(run "${args[@]}" --arch nanochat2 "${v2[@]}")
  echo "$a"
  echo "$b"
  at=$(sed -n 's/.*tok_per_s=\([0-9]*\).*/\1/p' <<< "$a")
  bt=$(sed -n 's/.*tok_per_s=\([0-9]*\).*/\1/p' <<< "$b")
  summary+=("$(awk -v s="$shape" -v a="$at" -v b="$bt" -v t="$THREADS" 'BEGIN {
    printf "%-5s %d thr  V1 (nanochat) %7d tok/s  nanochat2 %7d tok/s  nanochat2/V1 %.2fx", s, t, a, b, b / a }')")
done
printf '%s\n' "${summary[@]}"
