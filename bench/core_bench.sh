#!/usr/bin/env bash
# CORE throughput, kiln beside the PyTorch reference (tests/reference/core_ref.py, one example per
# forward as nanochat's core_eval.py), same checkpoint, same bundle, same threads, one run:
# examples per second over the evaluation loop (model and bundle loading excluded on both sides).
# The reference's time is also given without its tokenizer (pure-Python BPE), so the comparison
# does not hinge on that. Usage: bench/core_bench.sh [CKPT BUNDLE] [MAX_PER_TASK] [THREADS]
# Without CKPT/BUNDLE: trains the tiny BPE model of tests/e2e/core.sh (CPU, ~1 min) and builds the
# test bundle from ../shared/data (or KILN_DATA). Needs the built binaries (./eval, ./pretrain, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
PY=${KILN_PYTHON:-python3}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [ $# -ge 2 ] && [ -d "$1" ]; then ck=$1 bundle=$2; shift 2
else
  data=${KILN_DATA:-$root/../shared/data}
  head -c 200000 "$data/tinyshakespeare/input.txt" >"$tmp/input.txt"
  ./tokenizer train --vocab-size 512 --output "$tmp/tok.json" "$tmp/input.txt" >/dev/null
  ./prepare --tokenizer "$tmp/tok.json" --output "$tmp/shards" --val-fraction 0.1 "$tmp/input.txt" >/dev/null 2>&1
  ./pretrain configs/tiny.yaml "data.tokenizer=$tmp/tok.json" "data.train=$tmp/shards/train_*.h5" \
    "data.val=$tmp/shards/val_*.h5" eval.every=0 eval.sample_every=0 checkpoint.every=0 train.max_steps=40 \
    run.dir="$tmp/run" >/dev/null 2>&1
  ck=$tmp/run/ckpt bundle=$tmp/bundle
  "$PY" tests/e2e/core_bundle.py "$bundle" "$data/arc/ARC-Easy-test.jsonl" "$data/tinyshakespeare/input.txt"
fi
N=${1:-50}
THREADS=${2:-$(nproc)}
export OMP_NUM_THREADS=$THREADS
./eval --task core --ckpt "$ck" --bundle "$bundle" --max-per-task "$N" --device cpu >"$tmp/kiln.txt" 2>"$tmp/kiln.err"
k=$("$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["total"], r["seconds"], r["score"], r["checkpoint"])' \
      "$ck/eval/core.json")
read -r kn ks kcore step_dir <<<"$k"
p=$("$PY" tests/reference/core_ref.py bench "$step_dir" "$bundle" "$N")
"$PY" - "$kn" "$ks" "$kcore" "$p" "$THREADS" <<'EOF'
import json, sys
kn, ks, kcore = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
p = json.loads(sys.argv[4])
print(f"CORE on CPU, {sys.argv[5]} threads, {kn} examples (--max-per-task), same checkpoint and bundle")
print("| implementation                         | examples/s | seconds | CORE     |")
print("|----------------------------------------|-----------:|--------:|---------:|")
print(f"| kiln ./eval --task core                | {kn / ks:10.1f} | {ks:7.2f} | {kcore:.6f} |")
print(f"| PyTorch reference (core_ref.py)        | {p['examples'] / p['seconds']:10.1f} | {p['seconds']:7.2f} | {p['core']:.6f} |")
print(f"| PyTorch reference, tokenizer excluded  | {p['examples'] / p['model_seconds']:10.1f} | {p['model_seconds']:7.2f} |          |")
print(f"kiln / reference: {(kn / ks) / (p['examples'] / p['seconds']):.2f}x (tokenizer excluded: "
      f"{(kn / ks) / (p['examples'] / p['model_seconds']):.2f}x)")
EOF
