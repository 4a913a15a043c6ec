#!/usr/bin/env bash
# Fetch a public corpus into DIR, using a local copy first (../shared/data, or $KILN_DATA) and the
# canonical source otherwise. Usage: data_tools/fetch.sh NAME DIR
#   NAME: tinyshakespeare | gsm8k | arc | mmlu | humaneval
set -euo pipefail
name=${1:?usage: data_tools/fetch.sh NAME DIR}; dir=${2:?usage: data_tools/fetch.sh NAME DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
local_root=${KILN_DATA:-$here/../shared/data}
mkdir -p "$dir"
get() {  # get RELATIVE-PATH URL: copy from the local mirror, else download
  local rel=$1 url=$2 out="$dir/$(basename "$1")"
  [ -s "$out" ] && return 0
  if [ -f "$local_root/$rel" ]; then cp "$local_root/$rel" "$out.tmp" && mv "$out.tmp" "$out"; echo "[fetch] $out (local copy)"
  else curl -fsSL --retry 3 "$url" -o "$out.tmp" && mv "$out.tmp" "$out"; echo "[fetch] $out ($url)"; fi
}
case "$name" in
  tinyshakespeare)
    get tinyshakespeare/input.txt https://raw.githubusercontent.com/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare/input.txt ;;
  gsm8k)
    for s in train test; do
      get gsm8k/$s.jsonl https://raw.githubusercontent.com/openai/grade-school-math/3101c7d5072418e28b9008a6636bde82a006892c/grade_school_math/data/$s.jsonl
    done ;;
  humaneval)
    get humaneval/HumanEval.jsonl.gz https://raw.githubusercontent.com/openai/human-eval/6d43fb980f9fee3c892a914eda09951f772ad10d/data/HumanEval.jsonl.gz
    [ -s "$dir/HumanEval.jsonl" ] || gunzip -c "$dir/HumanEval.jsonl.gz" > "$dir/HumanEval.jsonl" ;;
  *) echo "data_tools/fetch.sh: unknown corpus '$name' (tinyshakespeare, gsm8k, humaneval)" >&2; exit 1 ;;
esac
