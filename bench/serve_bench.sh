#!/usr/bin/env bash
# ./serve throughput and time to first token with 1 (one at a time), 4 and 16 concurrent clients,
# in one run (bench/serve_bench.py), against the goals: 4 clients >= 2x one at a time, 16 clients
# >= 3.5x, and 16 clients >= 80% of the engine's own batch-16 decode tok/s on the same model
# (bench_generate, same threads as the server). Each server is driven by two clients in turn:
# bench/serve_load (C++, light: the server's own figures) and bench/serve_bench.py (the Python
# openai client, heavy: on 2 cores its 16 threads take CPU the server needs). Usage:
#   bench/serve_bench.sh [--ckpt DIR] [--before BUILD_DIR] [SLOTS=16] [MAX_TOKENS=64]
# Without --ckpt a small model (4 layers, context 640) is pretrained for 10 steps on tinyshakespeare
# (needs ../shared/data or a download, as the e2e tests). --before BUILD_DIR also serves the same
# model with BUILD_DIR/bin/serve (an older build) in the same run, and prints both side by side.
# SERVE_ARGS: extra ./serve flags for this build only (e.g. "--threads 2"). Builds ./serve.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
ckpt= before=
while [ $# -gt 0 ]; do
  case $1 in
    --ckpt) ckpt=$2; shift 2 ;;
    --before) before=$2; shift 2 ;;
    *) break ;;
  esac
done
SLOTS=${1:-16}
MAX_TOKENS=${2:-64}
PY=${KILN_PYTHON:-python3}
cmake --build build -j 2 --target serve pretrain tokenizer prepare bench_generate bench_serve_load >/dev/null
source tests/e2e/tiny_data.sh  # tiny_data, TINY_ARGS
source tests/e2e/serve_lib.sh  # serve_model, start_server, stop_servers
tmp=$(mktemp -d)
trap 'stop_servers; rm -rf "$tmp"' EXIT
# With --before the older build trains the model: the newer one reads older checkpoints, not the
# other way round (a newer config may carry keys an older build does not know).
[ -n "$ckpt" ] || PRETRAIN_BIN=${before:+$before/bin/pretrain} serve_model "$tmp" 4
# The engine alone on the same model: batch-16 greedy decode, with the threads ./serve uses.
threads=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))  # ./serve's default (--threads)
t=$(sed -n 's/.*--threads[= ]\([0-9]*\).*/\1/p' <<<"${SERVE_ARGS:-}")
[ -z "$t" ] || threads=$t
mkdir -p "$tmp/gen"
gen=$(build/bin/bench_generate "$tmp/gen" --ckpt "$ckpt" "${threads:-1}")
engine=$(sed -n 's/^kiln cached B=16 decode tok_per_s=\([0-9]*\).*/\1/p' <<<"$gen")
engine1=$(sed -n 's/^kiln cached B=1 decode tok_per_s=\([0-9]*\).*/\1/p' <<<"$gen")
echo "engine alone (bench_generate, ${threads:-1} thread(s)): batch-16 decode $engine tok/s, batch-1 $engine1 tok/s" \
     "($(awk -v a="$engine" -v b="$engine1" 'BEGIN { printf "%.2f", a / b }')x: the most '16 vs 1' can be when one client gets the engine's batch-1 speed)"
summaries=()
run() {  # LABEL SERVE_BINARY [SERVE FLAGS...]
  local label=$1 bin=$2
  shift 2
  SERVE_BIN=$bin start_server "$tmp/serve-$label.log" --slots "$SLOTS" "$@"
  echo
  echo "== $label: $bin"
  head -1 "$tmp/serve-$label.log"
  for client in c++ python; do
    if [ $client = c++ ]; then out=$(build/bin/bench_serve_load "$url" 16 "$MAX_TOKENS" --label "$label" --engine "$engine")
    else out=$("$PY" bench/serve_bench.py "$url" 16 "$MAX_TOKENS" --label "$label" --engine "$engine"); fi
    grep -v '^summary: ' <<<"$out"
    summaries+=("$(sed -n 's/^summary: //p' <<<"$out" | sed "s/^{/{\"client\": \"$client\", /")")
  done
  echo "server: $(curl -s "$url/health")"
  stop_servers
}
[ -z "$before" ] || run before "$before/bin/serve"
run after "$root/build/bin/serve" ${SERVE_ARGS:-}
echo
"$PY" - "${summaries[@]}" <<'EOF'
import json, sys
rows = [json.loads(a) for a in sys.argv[1:]]
print("| build | client | 1 client tok/s | 4 clients tok/s | 16 clients tok/s | 4 vs 1 (goal >= 2x) | 16 vs 1 (goal >= 3.5x) |"
      " 16 clients / engine batch 16 (goal >= 80%) | same text |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    t = r["tok_s"]
    print(f"| {r['label']} | {r['client']} | {t['1']:.0f} | {t['4']:.0f} | {t['16']:.0f} | {r['x4']:.2f}x | {r['x16']:.2f}x |"
          f" {100 * r['of_engine']:.0f}% of {r['engine_b16']:.0f} | {r['same']}/{r['n']} |")
EOF
