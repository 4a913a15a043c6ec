#!/usr/bin/env bash
# ./serve throughput and time to first token with 1 (one at a time), 4 and 16 concurrent clients,
# in one run (bench/serve_bench.py). Usage: bench/serve_bench.sh [--ckpt DIR] [SLOTS=16]
# [MAX_TOKENS=64]. Without --ckpt a small model (4 layers, context 640) is pretrained for 10 steps
# on tinyshakespeare (needs ../shared/data or a download, as the e2e tests). Builds ./serve.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
ckpt=
if [ "${1:-}" = --ckpt ]; then ckpt=$2; shift 2; fi
SLOTS=${1:-16}
MAX_TOKENS=${2:-64}
PY=${KILN_PYTHON:-python3}
cmake --build build -j 2 --target serve pretrain tokenizer prepare >/dev/null
source tests/e2e/tiny_data.sh  # tiny_data, TINY_ARGS
tmp=$(mktemp -d)
spid=
trap '[ -n "$spid" ] && kill "$spid" 2>/dev/null; rm -rf "$tmp"' EXIT
if [ -z "$ckpt" ]; then
  tiny_data "$tmp"
  ./pretrain "${TINY_ARGS[@]}" model.depth=4 model.seq_len=64 train.max_steps=10 train.device_batch_size=4 \
    train.total_batch_size=1024 eval.every=0 checkpoint.every=10 run.dir="$tmp/run" >"$tmp/train.log" 2>&1 \
    || { cat "$tmp/train.log"; exit 1; }
  ckpt=$tmp/run
fi
./serve --ckpt "$ckpt" --port 0 --slots "$SLOTS" >"$tmp/serve.log" 2>&1 &
spid=$!
url=
for _ in $(seq 1 600); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$tmp/serve.log" | head -1) && [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { cat "$tmp/serve.log"; exit 1; }
head -1 "$tmp/serve.log"
"$PY" bench/serve_bench.py "$url" 16 "$MAX_TOKENS"
echo "server: $(curl -s "$url/health")"
