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
source tests/e2e/serve_lib.sh  # serve_model, start_server, stop_servers
tmp=$(mktemp -d)
trap 'stop_servers; rm -rf "$tmp"' EXIT
[ -n "$ckpt" ] || serve_model "$tmp" 4
start_server "$tmp/serve.log" --slots "$SLOTS"
head -1 "$tmp/serve.log"
"$PY" bench/serve_bench.py "$url" 16 "$MAX_TOKENS"
echo "server: $(curl -s "$url/health")"
