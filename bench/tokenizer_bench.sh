#!/usr/bin/env bash
# Tokenizer bench, one run, kiln beside rustbpe (training) and tiktoken (encoding) on the same
# text: all text in ../shared/data (prose, tinyshakespeare, gsm8k, chat jsonl). Installs tiktoken
# and rustbpe with pip when missing. Usage: bench/tokenizer_bench.sh [VOCAB=8192]
set -euo pipefail
cd "$(dirname "$0")/.."
vocab=${1:-8192}
data=${KILN_DATA:-$(pwd)/../shared/data}
py=${PYTHON:-python3}
"$py" -c "import tiktoken, rustbpe" 2>/dev/null || "$py" -m pip install -q tiktoken rustbpe
[ -x build/bin/tokenizer_bench ] || cmake --build build --target tokenizer_bench
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat "$data"/prose/*.txt "$data"/tinyshakespeare/input.txt "$data"/gsm8k/*.jsonl "$data"/chat/*/*.messages.jsonl > "$tmp/text.txt"
echo "[bench] $(du -m "$tmp/text.txt" | cut -f1) MB of text, vocab $vocab, $(nproc) cores"
build/bin/tokenizer_bench "$tmp/text.txt" "$vocab" "$tmp/kiln.json"
"$py" bench/tokenizer_bench.py "$tmp/text.txt" "$vocab" "$tmp/kiln.json"
