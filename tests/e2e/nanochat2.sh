#!/usr/bin/env bash
# nanochat's current recipe through the real binaries, CPU: configs/tiny_v2.yaml (model.arch
# nanochat2: windows 16 of context 64, GQA, value embeddings; optim.recipe muon_adamw with
# base_train.py's schedules, no clipping) as shipped, only the data paths and run length changed:
#  0. nanochat's scaling rules on this model (train.total_batch_size and both scales -1, one step):
#     the [scaling] lines printed at start and the resolved config in the checkpoint's meta.json
#     hold base_train.py's numbers, computed here from gpt.py's shapes (scaling parameters =
#     transformer matrices + lm_head);
#  1. ./pretrain 20 steps; the loss falls, and meta.json says nanochat2 and muon_adamw, clip off;
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
cfg=("$root/configs/tiny_v2.yaml" "${TINY_ARGS[@]:1}")  # tiny_v2 with tiny_data's shards
args=("${cfg[@]}" train.max_steps=20 checkpoint.every=5 checkpoint.keep_last=0 eval.every=0 log.every=5)

# ---- 0. scaling rules: derived at start, saved in the resolved config --------------------------
./pretrain "${cfg[@]}" train.total_batch_size=-1 train.device_batch_size=64 optim.batch_lr_scale=-1 \
  optim.weight_decay_scale=-1 train.max_steps=1 eval.every=0 run.dir="$tmp/s" >"$tmp/s.log" 2>&1 \
  || { cat "$tmp/s.log"; fail "tiny_v2 with the auto batch size and scales"; }
# gpt.py's shapes for tiny_v2: 4 layers of width 128, 4 query heads and 2 kv heads of 32, value
# embeddings (and their 12 -> 2 gates) on layers 1 and 3, vocab 265 padded to 320; the reference
# d12: width 768, 6 heads of 128 (MHA), gates on its 6 odd layers. Ratio 12 (tiny_v2's).
read -r want_n want_nref want_b want_lr want_wd < <("${KILN_PYTHON:-python3}" - <<'PY'
import math
V, r, d = 320, 12, 128
N = 4 * (d * d + 2 * d * 64 + d * d + 8 * d * d) + 2 * 12 * 2 + V * d
N_ref = 12 * 12 * 768 * 768 + 6 * 12 * 6 + V * 768
target, D_REF, B_REF = int(r * N), r * N_ref, 2 ** 19
B = 2 ** round(math.log2(B_REF * (target / D_REF) ** 0.383))
print(N, N_ref, B, (B / B_REF) ** 0.5, math.sqrt(B / B_REF) * (D_REF / target))
PY
)
grep -q "\[scaling\] $want_n scaling parameters, .* reference d12: $want_nref," "$tmp/s.log" \
  || { grep scaling "$tmp/s.log"; fail "scaling parameters are not nanochat's ($want_n, d12 $want_nref)"; }
grep -q "\[scaling\] train.total_batch_size = $want_b tokens" "$tmp/s.log" \
  || { grep scaling "$tmp/s.log"; fail "the auto batch size is not $want_b tokens"; }
"${KILN_PYTHON:-python3}" - "$tmp/s/ckpt/step_00000001/meta.json" "$want_b" "$want_lr" "$want_wd" <<'PY' \
  || fail "the resolved config in the checkpoint"
import json, re, sys
text = json.load(open(sys.argv[1]))["config"]
key = lambda k: re.search(r"^\s+" + k + r":\s*(\S+)", text, re.M).group(1).strip('"')
b, lr, wd = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
got = (int(key("total_batch_size")), float(key("batch_lr_scale")), float(key("weight_decay_scale")))
print("resolved in the checkpoint: total_batch_size %d, batch_lr_scale %.9g, weight_decay_scale %.9g" % got)
assert got[0] == b and abs(got[1] - lr) <= 1e-12 * lr and abs(got[2] - wd) <= 1e-12 * wd, (got, b, lr, wd)
PY

# ---- 1. pretrain -----------------------------------------------------------------------------
./pretrain "${args[@]}" run.dir="$tmp/a" >"$tmp/a.log" 2>&1 || { cat "$tmp/a.log"; fail "pretrain tiny_v2"; }
"${KILN_PYTHON:-python3}" - "$tmp/a/ckpt/step_00000020/meta.json" <<'PY' || fail "meta.json is not tiny_v2's recipe"
import json, re, sys
text = json.load(open(sys.argv[1]))["config"]
key = lambda k: re.search(r"^\s+" + k + r":\s*(\S+)", text, re.M).group(1).strip('"')
got = {k: key(k) for k in ("arch", "recipe", "grad_clip", "weight_decay_schedule", "warmup_steps", "muon_momentum_final")}
assert got == {"arch": "nanochat2", "recipe": "muon_adamw", "grad_clip": "0", "weight_decay_schedule": "cosine",
               "warmup_steps": "40", "muon_momentum_final": "0.9"}, got
PY
first=$(grep -o '"step":1,"loss":[0-9.]*' "$tmp/a/metrics.jsonl" | sed 's/.*://')
last=$(grep -o '"step":20,"loss":[0-9.]*' "$tmp/a/metrics.jsonl" | sed 's/.*://')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.5) }' || fail "loss did not fall: step 1 $first, step 20 $last"
echo "ok: tiny_v2 (nanochat2 + muon_adamw) trained 20 steps, loss $first -> $last"

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
