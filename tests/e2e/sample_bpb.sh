#!/usr/bin/env bash
# ./sample and the Trainer's validation bits per byte against independent references
# (tests/reference/sample_bpb_ref.py: gpt_ref.py and the formulas, no kiln code). A tiny model is
# pretrained for 30 steps on a tokenizer with merges (tokens of 1..n bytes) and 4 validation
# documents (so <|bos|>, 0 bytes, is a target); its last val_bpb in metrics.jsonl must equal the
# reference's bpb of the final weights on the same validation rows (relative 1e-5: fp32
# summation order). A byte-level tiny model of 30 steps (no warmdown) then checks that `./sample
# --temperature 0` must print the reference's greedy continuation (asserted to vary: >= 20 tokens
# compared, >= 8 distinct, so that a KV-cache position bug shows), and a sampled run must repeat
# with its seed and change with another. Needs ../shared/data and KILN_PYTHON with torch + h5py.
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data, TINY_ARGS, skip
py=${KILN_PYTHON:-python3}
"$py" -c "import torch, safetensors, h5py" 2>/dev/null || skip "$py lacks torch/safetensors/h5py"
e2e_tmp  # tmp (removed on exit), fail

tiny_data "$tmp"
# bpb: 4 input files -> 4 validation documents; vocab 300 = 256 bytes + 35 merges + 9 specials.
mkdir -p "$tmp/bpb"
for i in 0 1 2 3; do tail -c +$((i * 50000 + 1)) "$tmp/input.txt" | head -c 50000 >"$tmp/bpb/part$i.txt"; done
./tokenizer train --vocab-size 300 --output "$tmp/bpb/tok.json" "$tmp"/bpb/part*.txt >/dev/null || fail "tokenizer"
./prepare --tokenizer "$tmp/bpb/tok.json" --output "$tmp/bpb/shards" --val-fraction 0.1 "$tmp"/bpb/part*.txt \
  >/dev/null 2>&1 || fail "prepare"
# device_batch_size 16 x seq_len 64, eval.tokens 4096: the validation is 4 batches of 16 rows.
./pretrain "${TINY_ARGS[@]}" "data.tokenizer=$tmp/bpb/tok.json" "data.train=$tmp/bpb/shards/train_*.h5" \
  "data.val=$tmp/bpb/shards/val_*.h5" train.max_steps=30 eval.every=10 checkpoint.every=0 run.dir="$tmp/bpbrun" \
  >"$tmp/bpbrun.log" 2>&1 || { cat "$tmp/bpbrun.log"; fail "pretrain (bpb)"; }
kiln_bpb=$(grep '"step":30,"val_loss"' "$tmp/bpbrun/metrics.jsonl" | sed -E 's/.*"val_bpb":([^,}]*).*/\1/')
[ -n "$kiln_bpb" ] || fail "no validation record at step 30 in metrics.jsonl"
ref_bpb=$("$py" tests/reference/sample_bpb_ref.py bpb "$tmp/bpbrun/ckpt/step_00000030" "$tmp/bpb/tok.json" \
  "$tmp/bpb/shards/val_0000.h5" 16 64 4) || fail "reference bpb"
echo "val bpb at step 30: kiln $kiln_bpb, reference $ref_bpb"
"$py" -c "import sys; a, b = float('$kiln_bpb'), float('$ref_bpb'); sys.exit(0 if abs(a - b) <= 1e-5 * b else 1)" \
  || fail "the Trainer's val bpb differs from the reference"

# No warmdown: at full learning rate the 30-step model's greedy text varies (CORIOLANIOLANUS...);
# with the warmdown it settles into "the the the", where a decode-position bug went unseen.
./pretrain "${TINY_ARGS[@]}" train.max_steps=30 optim.warmdown_ratio=0 eval.every=0 checkpoint.every=0 run.dir="$tmp/run" \
  >"$tmp/run.log" 2>&1 || { cat "$tmp/run.log"; fail "pretrain"; }
step=$tmp/run/ckpt/step_00000030

# text SAMPLE_OUTPUT: what ./sample printed for its one sample (after the parameter line).
text() { "$py" -c "import sys; s = open(sys.argv[1], 'rb').read(); s = s[s.index(b'\n') + 1:]; sys.stdout.buffer.write(s[:s.rindex(b'\n---------------\n')])" "$1"; }
./sample --ckpt "$tmp/run/ckpt" --start "First Citizen:" --temperature 0 --num-samples 1 --max-new-tokens 40 \
  >"$tmp/greedy.out" 2>"$tmp/greedy.err" || { cat "$tmp/greedy.err"; fail "./sample"; }
text "$tmp/greedy.out" >"$tmp/kiln.txt"
"$py" tests/reference/sample_bpb_ref.py greedy "$step" "First Citizen:" 40 >"$tmp/ref.txt" || fail "reference greedy"
echo "kiln greedy:      $(head -c 200 "$tmp/kiln.txt" | tr '\n' '|')"
echo "reference greedy: $(head -c 200 "$tmp/ref.txt" | tr '\n' '|')"
[ "$(wc -c <"$tmp/ref.txt")" -gt 6 ] || fail "the reference produced nothing to compare"
# The comparison can only see a decode-position bug if the greedy text varies (issue 19, item 21a):
# at least 20 compared tokens (bytes), of at least 8 distinct values. (With an off-by-one decode
# position in the KV cache, kiln's text leaves the reference's after 16 tokens.)
"$py" -c "import sys; g = open(sys.argv[1], 'rb').read()[len(b'First Citizen:'):]; print(f'greedy: {len(g)} tokens compared, {len(set(g))} distinct'); sys.exit(0 if len(g) >= 20 and len(set(g)) >= 8 else 1)" \
  "$tmp/ref.txt" || fail "the greedy text is too uniform for the comparison to catch a decode bug"
"$py" -c "import sys; k, r = open(sys.argv[1], 'rb').read(), open(sys.argv[2], 'rb').read(); sys.exit(0 if k.startswith(r) else 1)" \
  "$tmp/kiln.txt" "$tmp/ref.txt" || fail "./sample --temperature 0 differs from the reference's greedy continuation"

s() { ./sample --ckpt "$tmp/run/ckpt" --start "ROMEO:" --temperature 1.0 --top-k 50 --num-samples 1 \
        --max-new-tokens 40 --seed "$1" >"$2" 2>/dev/null || fail "./sample --seed $1"; }
s 5 "$tmp/s5a"; s 5 "$tmp/s5b"; s 6 "$tmp/s6"
cmp -s "$tmp/s5a" "$tmp/s5b" || fail "the same seed gave two different samples"
cmp -s "$tmp/s5a" "$tmp/s6" && fail "seeds 5 and 6 gave the same sample"
echo "ok: val bpb and ./sample match the references; sampling repeats with its seed"
