#!/usr/bin/env bash
# nanochat's current optimizer recipe through ./pretrain (optim.recipe muon_adamw, on the tiny V1
# model): train.total_batch_size -1 and the auto LR / weight-decay scales are resolved at start
# by nanochat's rules, checked here against the formulas of base_train.py computed from the
# model's shape, and written into the checkpoint's config (one step: the auto batch is 65536
# tokens). Then, at 1024 tokens per step (auto scales), a run SIGKILLed after step 5 and resumed from
# its last checkpoint reads the scales back (it derives nothing) and equals the uninterrupted run bit for bit.
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data, strip_timing, kill_at_step
e2e_tmp  # tmp (removed on exit), fail

tiny_data "$tmp"
args=("${TINY_ARGS[@]}" optim.recipe=muon_adamw train.target_param_data_ratio=12 train.grad_clip=0
      checkpoint.keep_last=0 log.every=1)
./pretrain "${args[@]}" train.total_batch_size=-1 train.max_steps=1 eval.every=0 run.dir="$tmp/s" >"$tmp/s.log" 2>&1 \
  || { cat "$tmp/s.log"; fail "the run with the auto batch size"; }

# base_train.py's rules for this model: configs/tiny.yaml is depth 4, width 128, vocab 265 padded
# to 320 (a multiple of 64, as nanochat); V1 counts every parameter (12 d^2 per layer, untied
# embedding and head); the reference is a d12 (width 768).
read -r want_b want_lr want_wd < <("${KILN_PYTHON:-python3}" - <<'PY'
import math
V, r = 320, 12
N = 4 * 12 * 128 * 128 + 2 * V * 128
N_ref = 12 * 12 * 768 * 768 + 2 * V * 768
target, D_REF, B_REF = int(r * N), r * N_ref, 2 ** 19
B = 2 ** round(math.log2(B_REF * (target / D_REF) ** 0.383))
print(B, (B / B_REF) ** 0.5, math.sqrt(B / B_REF) * (D_REF / target))
PY
)
grep -q "\[scaling\] train.total_batch_size = $want_b tokens" "$tmp/s.log" \
  || { grep scaling "$tmp/s.log"; fail "the auto batch size is not $want_b tokens"; }
meta="$tmp/s/ckpt/step_00000001/meta.json"
"${KILN_PYTHON:-python3}" - "$meta" "$want_b" "$want_lr" "$want_wd" <<'PY' || fail "resolved config in $meta"
import json, re, sys
text = json.load(open(sys.argv[1]))["config"]
key = lambda k: re.search(r"^\s+" + k + r":\s*(\S+)", text, re.M).group(1).strip('"')
b, lr, wd = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
got = (int(key("total_batch_size")), float(key("batch_lr_scale")), float(key("weight_decay_scale")))
print("resolved in the checkpoint: total_batch_size %d, batch_lr_scale %.9g, weight_decay_scale %.9g" % got)
assert got[0] == b, got
assert abs(got[1] - lr) <= 1e-12 * lr and abs(got[2] - wd) <= 1e-12 * wd, (got, lr, wd)
assert float(key("grad_clip")) == 0 and key("recipe") == "muon_adamw", text
PY

args+=(train.total_batch_size=1024 train.device_batch_size=8 train.max_steps=8 checkpoint.every=3 eval.every=4)
./pretrain "${args[@]}" run.dir="$tmp/a" >"$tmp/a.log" 2>&1 || { cat "$tmp/a.log"; fail "uninterrupted run"; }
grep -q "\[scaling\] optim.batch_lr_scale = 0.044194" "$tmp/a.log" || { grep scaling "$tmp/a.log"; fail "LR scale at 1024 tokens"; }
./pretrain "${args[@]}" run.dir="$tmp/b" >"$tmp/b.log" 2>&1 &
kill_at_step $! "$tmp/b/metrics.jsonl" 5 || fail "run B ended before it could be killed at step 5"
[ -d "$tmp/b/ckpt/step_00000003" ] || fail "no step 3 checkpoint in run B"
[ -d "$tmp/b/ckpt/step_00000008" ] && fail "run B finished before the kill"
./pretrain --resume "$tmp/b/ckpt" >"$tmp/b2.log" 2>&1 || { cat "$tmp/b2.log"; fail "resumed run"; }
grep -q "resumed from .*step_0000000[36]" "$tmp/b2.log" || { cat "$tmp/b2.log"; fail "did not resume from its last checkpoint"; }
grep -q "\[scaling\]" "$tmp/b2.log" && fail "the resumed run derived the scales again instead of reading them"
diff <(strip_timing "$tmp/a/metrics.jsonl") <(strip_timing "$tmp/b/metrics.jsonl") >"$tmp/diff" \
  || { head -20 "$tmp/diff"; fail "losses differ between the uninterrupted and the resumed run"; }
echo "ok: auto batch $want_b tokens, LR scale $want_lr, WD scale $want_wd; resumed run equals the uninterrupted one"
