#!/usr/bin/env bash
# Validation bits per byte after the same tokens: nanochat V1's recipe (optim.recipe nanochat,
# configs/tiny.yaml's optimizer) against nanochat's current optimizer recipe (optim.recipe
# muon_adamw: MuonAdamW, base_train.py's schedules, gradient clipping off, the auto LR and
# weight-decay scales), same model, data, seed and tokens; CPU, one run each. Prints one table.
# Usage: bench/recipe_bpb.sh [STEPS] [MODEL OVERRIDES...]   (default 300 steps of 2048 tokens on
# configs/tiny.yaml's model). TODO(issue 22): with nanochat's current model merged, pass its
# overrides (model.arch=... at depth 6, context 512) for the recipe row: the issue's comparison is
# current model + current recipe against V1 model + V1 recipe; today both rows use the V1 model.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-300}; shift || true
data=${KILN_DATA:-$(pwd)/../shared/data}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
head -c 1000000 "$data/tinyshakespeare/input.txt" >"$tmp/input.txt"
./tokenizer train --vocab-size 512 --output "$tmp/tok.json" "$tmp/input.txt" >/dev/null
./prepare --tokenizer "$tmp/tok.json" --output "$tmp/shards" --val-fraction 0.1 "$tmp/input.txt" >/dev/null 2>&1
common=(configs/tiny.yaml "data.tokenizer=$tmp/tok.json" "data.train=$tmp/shards/train_*.h5"
        "data.val=$tmp/shards/val_*.h5" train.max_steps="$STEPS" eval.every="$STEPS" eval.tokens=65536
        eval.sample_every=0 checkpoint.every=0 log.every=50 "$@")
run() {  # NAME OVERRIDES...: trains, prints "NAME bpb tok/s"
  local name=$1; shift
  ./pretrain "${common[@]}" "$@" run.dir="$tmp/$name" >"$tmp/$name.log" 2>&1 || { tail -20 "$tmp/$name.log"; exit 1; }
  python3 - "$tmp/$name/metrics.jsonl" "$name" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
bpb = [r["val_bpb"] for r in recs if "val_bpb" in r][-1]
tok = [r["tok_per_s"] for r in recs if "tok_per_s" in r]
tokens = [r["tokens"] for r in recs if "tokens" in r][-1]
print(f"| {sys.argv[2]:<28} | {tokens:>10} | {bpb:.4f} | {sorted(tok)[len(tok) // 2]:>9.0f} |")
PY
}
echo "| recipe                       |     tokens | val bpb | tok/s med |"
echo "|------------------------------|------------|---------|-----------|"
run v1_nanochat
run muon_adamw optim.recipe=muon_adamw train.grad_clip=0
