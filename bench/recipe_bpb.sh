#!/usr/bin/env bash
# nanochat's current recipe against V1 on the CPU, one run, same machine, same data, seed, shape
# and tokens (issue 22's bench). Two rows, printed side by side whichever wins:
#   v1      configs/tiny.yaml      model.arch nanochat (V1), V1's optimizer recipe, grad clip 1.0
#   current configs/tiny_v2.yaml   model.arch nanochat2 + optim.recipe muon_adamw with nanochat's
#                                  schedules and its sqrt(B / 2^19) LR / weight-decay scales, no clipping
# Opt-in rows: BENCH_MIXED=1, nanochat2 with V1's recipe (splits model from optimizer); BENCH_RULE=1,
# the current recipe with nanochat's sqrt(B / 2^19) LR and weight-decay scales (tiny_v2 keeps them at 1).
# Each row's shape is overridden to the bench's: by default depth 6, context 512, width 192 (3 heads
# of 64), windows SSSL with a short window of 128 (nanochat's rule at context 512), so windows are
# shorter than the context and value embeddings sit on layers 1, 3 and 5. Printed per row:
#   - val bits per byte after the same number of training tokens (eval at the last step only);
#   - training tok/s: the median of the run's logged steps (the whole step, optimizer included).
# The default (200 steps of 4096 tokens each, 0.8M tokens a row) takes ~15 minutes on 2 cores.
# Knobs (env): BENCH_STEPS (200), BENCH_BATCH (total tokens per step, 4096), BENCH_DEPTH (6),
# BENCH_WIDTH (192), BENCH_HEADS (3), BENCH_SEQ (512), BENCH_WINDOW (128), BENCH_VAL_TOKENS (65536),
# BENCH_MIXED (0), BENCH_RULE (0); extra arguments are config overrides applied to every row.
# Usage: bench/recipe_bpb.sh [OVERRIDES...]   (needs ./tokenizer ./prepare ./pretrain built)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${BENCH_STEPS:-200} BATCH=${BENCH_BATCH:-4096} SEQ=${BENCH_SEQ:-512}
data=${KILN_DATA:-$(pwd)/../shared/data}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
head -c 1000000 "$data/tinyshakespeare/input.txt" >"$tmp/input.txt"
./tokenizer train --vocab-size 512 --output "$tmp/tok.json" "$tmp/input.txt" >/dev/null
./prepare --tokenizer "$tmp/tok.json" --output "$tmp/shards" --val-fraction 0.1 "$tmp/input.txt" >/dev/null 2>&1
micro=$(( BATCH / SEQ )); [ "$micro" -le 8 ] || micro=8  # rows per micro-step (the rest accumulates)
shape=(model.depth="${BENCH_DEPTH:-6}" model.width="${BENCH_WIDTH:-192}" model.n_head="${BENCH_HEADS:-3}"
       model.n_kv_head=0 model.seq_len="$SEQ")
windows=(model.window_pattern=SSSL model.short_window="${BENCH_WINDOW:-128}")  # nanochat2 only
common=("data.tokenizer=$tmp/tok.json" "data.train=$tmp/shards/train_*.h5" "data.val=$tmp/shards/val_*.h5"
        train.max_steps="$STEPS" train.total_batch_size="$BATCH" train.device_batch_size="$micro"
        eval.every="$STEPS" eval.tokens="${BENCH_VAL_TOKENS:-65536}" eval.sample_every=0 checkpoint.every=0
        log.every=10)
run() {  # DIR NAME CONFIG OVERRIDES...: trains, prints one table row
  local dir=$tmp/$1 name=$2 cfg=$3; shift 3
  ./pretrain "$cfg" "${common[@]}" "$@" run.dir="$dir" >"$dir.log" 2>&1 || { tail -20 "$dir.log"; exit 1; }
  python3 - "$dir/metrics.jsonl" "$name" "$cfg" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
bpb = [r["val_bpb"] for r in recs if "val_bpb" in r][-1]
tok = sorted(r["tok_per_s"] for r in recs if "tok_per_s" in r)
tokens = [r["tokens"] for r in recs if "tokens" in r][-1]
print(f"| {sys.argv[2]:<40} | {sys.argv[3]:<20} | {tokens:>9} | {bpb:.4f} | {tok[len(tok) // 2]:>9.0f} |", flush=True)
PY
}
echo "# bench/recipe_bpb.sh: $STEPS steps x $BATCH tokens, shape ${shape[*]}; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| row                                      | config               |    tokens | val bpb | tok/s med |"
echo "|------------------------------------------|----------------------|-----------|---------|-----------|"
run v1 "v1: nanochat + V1 recipe" configs/tiny.yaml "${shape[@]}" "$@"
run current "current: nanochat2 + muon_adamw" configs/tiny_v2.yaml "${shape[@]}" "${windows[@]}" "$@"
[ "${BENCH_MIXED:-0}" != 1 ] ||
  run mixed "mixed: nanochat2 + V1 recipe" configs/tiny.yaml model.arch=nanochat2 "${shape[@]}" "${windows[@]}" "$@"
[ "${BENCH_RULE:-0}" != 1 ] ||
  run rule "current, nanochat's LR/WD scales" configs/tiny_v2.yaml "${shape[@]}" "${windows[@]}" optim.batch_lr_scale=-1 \
    optim.weight_decay_scale=-1 "$@"
grep -h "\[scaling\]" "$tmp"/*.log | sed 's/^/# /' || true
