#!/usr/bin/env bash
# Behaviour of the chat stages on CPU (issue 9; not part of ctest): the tiny base model (the
# demo's runs/tiny/ckpt) is SFT-trained on GSM8K-format conversations for a few minutes, then the
# base and the SFT model answer 50 held-out GSM8K test prompts greedily; printed: the share of
# answers that end with <|assistant_end|> and hold a "#### <number>" line, before vs after.
# Usage: bench/chat_format.sh [OUT_DIR] (env: BASE=runs/tiny/ckpt, STEPS=300)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/kiln_chat_format}; base=${BASE:-runs/tiny/ckpt}; steps=${STEPS:-300}
[ -d "$base" ] || { echo "needs the tiny base model $base: run ./launch/demo.sh (or ./pretrain configs/tiny.yaml)" >&2; exit 1; }
for b in prepare sft; do [ -x ./$b ] || { echo "build ./$b first (cmake --build build --target $b)" >&2; exit 1; }; done
step_dir=$(ls -d "$base"/step_* | tail -1)
tok=$step_dir/tokenizer.json
rm -rf "$out"; mkdir -p "$out"
data_tools/fetch.sh gsm8k data/gsm8k
# Only the train conversations that fit the 512-token context: a cropped row would teach the model
# to run on without the "#### <number>" line and <|assistant_end|>, which is what is measured.
python3 -c "
import json, sys
n = 0
with open(sys.argv[2], 'w') as out:
    for line in open(sys.argv[1]):
        r = json.loads(line)
        if len(r['question'].encode()) + len(r['answer'].encode()) + 4 * r['answer'].count('<<') + 8 <= 513:
            out.write(line); n += 1
print(f'GSM8K train conversations that fit in 513 byte tokens: {n}')" data/gsm8k/train.jsonl "$out/train_fit.jsonl"
./prepare --chat --tokenizer "$tok" --output "$out/train" --val-fraction 0.02 --max-len 513 "$out/train_fit.jsonl" >/dev/null
./prepare --chat --tokenizer "$tok" --output "$out/test" --val-fraction 0 --max-len 0 data/gsm8k/test.jsonl >/dev/null
start=$(date +%s)
# The base never saw the chat tokens, so this SFT plays midtraining's part too: base LRs
# (init_lr_frac 1) decaying linearly to 0, instead of tiny_sft's 0.02.
./sft configs/tiny_sft.yaml init.from="$base" data.tokenizer="$tok" "data.train=$out/train/train_*.h5" \
  "data.val=$out/train/val_*.h5" optim.init_lr_frac=1 train.max_steps=$steps eval.every=100 eval.sample_every=0 \
  checkpoint.every=0 run.dir="$out/sft" >"$out/sft.log" 2>&1 || { tail -20 "$out/sft.log"; exit 1; }
grep -E "^\[eval\]|step +$steps/" "$out/sft.log"
echo "SFT: $steps steps in $(( $(date +%s) - start )) s"
python3 bench/chat_format_eval.py --test "$out/test/train_0000.h5" --n 50 --max-len 512 \
  "$step_dir" "$(ls -d "$out"/sft/ckpt/step_* | tail -1)"
