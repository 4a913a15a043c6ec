#!/usr/bin/env bash
# Generation throughput, kiln beside PyTorch, one run, same weights (bench/generate.cpp writes the
# model's safetensors; tests/reference/generate_ref.py loads them): prefill tok/s at batch 16;
# decode tok/s at batch 1 and 16 with kiln's KV-cache engine, without a cache, and PyTorch's loop
# with a KV cache. Usage: bench/generate.sh [--ckpt DIR | --model L,C,H,SEQ,VOCAB] [threads] [cpu|cuda];
# builds the bench (unless KILN_BENCH_BIN names it). Default: a random-weight 6-layer, 384-wide model
# (shakespeare_char shape), 1 thread, CPU; --model: random weights of that shape (bench/gpu_check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=()
if [ "${1:-}" = --ckpt ] || [ "${1:-}" = --model ]; then ckpt=("$1" "$2"); shift 2; fi
THREADS=${1:-1}
DEV=${2:-cpu}
PY=${KILN_PYTHON:-python3}
BIN=${KILN_BENCH_BIN:-build/bin/bench_generate}
[ -n "${KILN_BENCH_BIN:-}" ] || cmake --build build -j 2 --target bench_generate > /dev/null
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
k=$("$BIN" "$tmp" "${ckpt[@]}" "$THREADS" "$DEV")
p=$("$PY" tests/reference/generate_ref.py "$tmp/model.safetensors" "$tmp/shape.json" "$tmp/prompts.safetensors" \
      "$THREADS" "$DEV")
grep -v ' ids B=1' <<<"$k"
grep -v ' ids B=1' <<<"$p"
get() { sed -n "s/^$1.*tok_per_s=\([0-9]*\).*/\1/p" <<<"$2"; }
same=$([ "$(sed -n 's/^kiln ids B=1: *//p' <<<"$k")" = "$(sed -n 's/^pytorch ids B=1: *//p' <<<"$p")" ] && echo yes || echo NO)
echo
echo "| measure (tok/s)      | kiln engine (KV cache) | kiln without cache | PyTorch + KV cache | kiln / PyTorch |"
echo "|----------------------|-----------------------:|-------------------:|-------------------:|---------------:|"
awk -v k="$(get 'kiln prefill B=16' "$k")" -v p="$(get 'pytorch prefill B=16' "$p")" \
  'BEGIN { printf "| prefill, batch 16    | %22d | %18s | %18d | %13.2fx |\n", k, "-", p, k / p }'
for B in 1 16; do
  awk -v B=$B -v k="$(get "kiln cached B=$B " "$k")" -v u="$(get "kiln uncached B=$B " "$k")" \
      -v p="$(get "pytorch cached B=$B " "$p")" \
    'BEGIN { printf "| decode, batch %-6s | %22d | %18d | %18d | %13.2fx |\n", B, k, u, p, k / p }'
done
echo "greedy ids (batch 1, 128 tokens) identical in kiln and PyTorch: $same"
