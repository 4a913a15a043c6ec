#!/usr/bin/env bash
# Generation throughput, kiln beside PyTorch, one run, same weights (bench/generate.cpp writes the
# model's safetensors; tests/reference/generate_ref.py loads them): prefill tok/s at batch 16;
# decode tok/s at batch 1 and 16 with kiln's KV-cache engine, without a cache, and PyTorch's loop
# with a KV cache. Usage: bench/generate.sh [--ckpt DIR | --model L,C,H,SEQ,VOCAB] [threads] [cpu|cuda];
# builds the bench (unless KILN_BENCH_BIN names it). Default: a random-weight 6-layer, 384-wide model
# (shakespeare_char shape), 1 thread, CPU; --model: random weights of that shape (bench/gpu_check.sh).
# --before BUILD_DIR adds BUILD_DIR/bin/bench_generate (an older build) as a column, same weights.
set -euo pipefail
cd "$(dirname "$0")/.."
before=
if [ "${1:-}" = --before ]; then before=$2; shift 2; fi
ckpt=()
if [ "${1:-}" = --ckpt ] || [ "${1:-}" = --model ]; then ckpt=("$1" "$2"); shift 2; fi
THREADS=${1:-1}
DEV=${2:-cpu}
PY=${KILN_PYTHON:-python3}
BIN=${KILN_BENCH_BIN:-build/bin/bench_generate}
[ -n "${KILN_BENCH_BIN:-}" ] || cmake --build build -j 2 --target bench_generate > /dev/null
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
k=$("$BIN" "$tmp" "${ckpt[@]}" "$THREADS" "$DEV")
o=
if [ -n "$before" ]; then mkdir -p "$tmp/before"; o=$("$before/bin/bench_generate" "$tmp/before" "${ckpt[@]}" "$THREADS" "$DEV"); fi
p=$("$PY" tests/reference/generate_ref.py "$tmp/model.safetensors" "$tmp/shape.json" "$tmp/prompts.safetensors" \
      "$THREADS" "$DEV")
grep -v ' ids B=1' <<<"$k"
grep -v ' ids B=1' <<<"$p"
[ -z "$o" ] || sed -n 's/^kiln \(.*tok_per_s.*\)/before: kiln \1/p' <<<"$o"
get() { sed -n "s/^$1.*tok_per_s=\([0-9]*\).*/\1/p" <<<"$2"; }
same=$([ "$(sed -n 's/^kiln ids B=1: *//p' <<<"$k")" = "$(sed -n 's/^pytorch ids B=1: *//p' <<<"$p")" ] && echo yes || echo NO)
echo
if [ -n "$o" ]; then
  echo "| measure (tok/s)      | kiln engine (KV cache) | kiln before | kiln without cache | PyTorch + KV cache | kiln / PyTorch | before / PyTorch |"
  echo "|----------------------|-----------------------:|------------:|-------------------:|-------------------:|---------------:|-----------------:|"
else
  echo "| measure (tok/s)      | kiln engine (KV cache) | kiln without cache | PyTorch + KV cache | kiln / PyTorch |"
  echo "|----------------------|-----------------------:|-------------------:|-------------------:|---------------:|"
fi
row() {  # LABEL KILN BEFORE UNCACHED PYTORCH
  if [ -n "$o" ]; then
    awk -v l="$1" -v k="$2" -v b="$3" -v u="$4" -v p="$5" \
      'BEGIN { printf "| %-20s | %22d | %11d | %18s | %18d | %13.2fx | %15.2fx |\n", l, k, b, u, p, k / p, b / p }'
  else
    awk -v l="$1" -v k="$2" -v u="$4" -v p="$5" 'BEGIN { printf "| %-20s | %22d | %18s | %18d | %13.2fx |\n", l, k, u, p, k / p }'
  fi
}
row "prefill, batch 16" "$(get 'kiln prefill B=16' "$k")" "$(get 'kiln prefill B=16' "$o")" - "$(get 'pytorch prefill B=16' "$p")"
for B in 1 16; do
  row "decode, batch $B" "$(get "kiln cached B=$B " "$k")" "$(get "kiln cached B=$B " "$o")" \
    "$(get "kiln uncached B=$B " "$k")" "$(get "pytorch cached B=$B " "$p")"
done
echo "greedy ids (batch 1, 128 tokens) identical in kiln and PyTorch: $same"
