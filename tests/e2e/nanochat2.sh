#!/usr/bin/env bash
# model.arch nanochat2 (nanochat's current model, issue 22) through the real binaries, CPU:
#  1. ./pretrain 20 steps of a tiny nanochat2 (windows 16 of context 64, GQA, value embeddings);
#     the loss falls, and meta.json says nanochat2;
#  2. ./sample --top-k 1 (greedy, KV cache) for 100 new tokens, past every window, and ./serve's
#     greedy /v1/completions on the same checkpoint give the same text;
#  3. exact resume after SIGKILL: the losses of the resumed run equal an uninterrupted run's.
# Needs tinyshakespeare (tiny_data.sh).
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh
source tests/e2e/serve_lib.sh
e2e_tmp
trap 'stop_servers; rm -rf "$tmp"' EXIT
tiny_data "$tmp"
args=("${TINY_ARGS[@]}" model.arch=nanochat2 model.short_window=16 model.n_kv_head=2 train.max_steps=20
      train.device_batch_size=8 train.total_batch_size=512 train.grad_clip=0 checkpoint.every=5 checkpoint.keep_last=0
      eval.every=0 log.every=5)

# ---- 1. pretrain -----------------------------------------------------------------------------
./pretrain "${args[@]}" run.dir="$tmp/a" >"$tmp/a.log" 2>&1 || { cat "$tmp/a.log"; fail "pretrain nanochat2"; }
grep -q 'arch: \\"nanochat2\\"' "$tmp/a/ckpt/step_00000020/meta.json" || fail "meta.json does not say nanochat2"
first=$(grep -o '"step":1,"loss":[0-9.]*' "$tmp/a/metrics.jsonl" | sed 's/.*://')
last=$(grep -o '"step":20,"loss":[0-9.]*' "$tmp/a/metrics.jsonl" | sed 's/.*://')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.5) }' || fail "loss did not fall: step 1 $first, step 20 $last"
echo "ok: nanochat2 trained 20 steps, loss $first -> $last"

# ---- 2. ./sample and ./serve, greedy ------------------------------------------------------------
./sample --ckpt "$tmp/a" --start "ROMEO:" --top-k 1 --num-samples 1 --max-new-tokens 100 >"$tmp/sample.out" \
  2>"$tmp/sample.err" || { cat "$tmp/sample.err"; fail "./sample"; }
[ "$(wc -c <"$tmp/sample.out")" -gt 60 ] || { cat "$tmp/sample.out"; fail "./sample printed too little"; }
ckpt=$tmp/a
start_server "$tmp/serve.log"
curl -s "$url/v1/completions" -H 'Content-Type: application/json' \
  -d '{"prompt": "ROMEO:", "max_tokens": 100, "temperature": 0}' >"$tmp/serve.json" || fail "curl /v1/completions"
"${KILN_PYTHON:-python3}" - "$tmp/serve.json" "$tmp/sample.out" <<'PY' || fail "./serve's greedy text differs from ./sample's"
import json, sys
served = json.load(open(sys.argv[1]))["choices"][0]["text"]
sampled = open(sys.argv[2]).read()
if served not in sampled:
    print("serve:", repr(served)); print("sample:", repr(sampled)); sys.exit(1)
print("ok: ./serve and ./sample greedy agree on", len(served), "characters")
PY
stop_servers || fail "./serve did not stop on SIGTERM"

# ---- 3. exact resume after SIGKILL --------------------------------------------------------------
./pretrain "${args[@]}" run.dir="$tmp/b" >"$tmp/b.log" 2>&1 &
kill_at_step $! "$tmp/b/metrics.jsonl" 12 || fail "run B ended before it could be killed at step 12"
./pretrain --resume "$tmp/b/ckpt" >"$tmp/b2.log" 2>&1 || { cat "$tmp/b2.log"; fail "resume"; }
grep -q "resumed from .*step_00000010" "$tmp/b2.log" || { cat "$tmp/b2.log"; fail "did not resume from step 10"; }
diff <(strip_timing "$tmp/a/metrics.jsonl") <(strip_timing "$tmp/b/metrics.jsonl") >"$tmp/diff" \
  || { head -20 "$tmp/diff"; fail "the resumed nanochat2 run differs from the uninterrupted one"; }
echo "ok: nanochat2 resumed after SIGKILL at step 12 equals the uninterrupted run bit for bit"
