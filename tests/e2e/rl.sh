#!/usr/bin/env bash
# ./rl through the real binary on 1 rank (CPU), from a tiny SFT model of a synthetic arithmetic
# task (tests/e2e/rl_data.sh):
#  1. reference step: steps 1-2 of ./rl equal tests/reference/rl_step_ref.py (chat_rl.py's loss on
#     the samples ./rl drew, then Muon + AdamW): loss, gradient norm, every updated weight;
#  2. learning: with rl.reward=format (1 for a '#### <number>' answer) the reward mean rises from
#     near 0 (the SFT model writes that form in ~1 of 10 replies): step 1 < 0.15, last 5 steps > 0.8;
#  3. exact resume: SIGKILL after a random step, --resume: every record (losses, rewards, the
#     questions and a hash of the samples of every lane, pass@k) and the final weights bit-identical;
#  4. the two lanes that got the same prompt in step 1 drew different samples (own RNG streams);
#     meta.json's stage and lineage; the report card's RL line and plot; a GSM8K row without a
#     parsable answer counted, skipped and reported; refusals (base model, no init.from).
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data, strip_timing, e2e_tmp
source tests/e2e/chat_data.sh  # chat_setup, chat_resume_check
source tests/e2e/rl_data.sh    # rl_setup, RL_ARGS
py=${KILN_PYTHON:-python3}
"$py" -c "import torch, safetensors" 2>/dev/null || skip "$py lacks torch/safetensors"
e2e_tmp  # tmp (removed on exit), fail
[ -x ./rl ] || fail "./rl not built"

rl_setup "$tmp"
sft_step=$(ls -d "$tmp"/sft/ckpt/step_* | tail -1)

# 1. Reference step.
# adam_eps 1e-4 as tests/e2e/train_step_reference.sh: AdamW turns the rounding noise of near-zero gradients
# (embedding rows of bytes no sample holds) into full-size updates at the default 1e-10.
KILN_RL_DUMP="$tmp/dump.jsonl" ./rl "${RL_ARGS[@]}" rl.reward=format train.max_steps=3 checkpoint.every=1 optim.adam_eps=1e-4 \
  checkpoint.keep_last=0 eval.every=0 run.dir="$tmp/ref" >"$tmp/ref.log" 2>&1 || { cat "$tmp/ref.log"; fail "reference run"; }
"$py" tests/reference/rl_step_ref.py "$sft_step" "$tmp/ref/ckpt" "$tmp/dump.jsonl.0" 265 2 \
  || fail "./rl's step differs from the PyTorch reference of chat_rl.py"
echo "ok: ./rl steps 1-2 = the PyTorch reference of chat_rl.py (loss, gradient norm, every weight)"

# 2. Learning on CPU.
# LRs x 0.5 instead of chat_rl.py's x 0.05, so that it shows within 20 CPU steps (measured at x 0.05:
# 0.06 -> ~0.3 after 20 steps; at x 0.5: 0.06 -> ~1.0 after 5).
learn_steps=20
./rl "${RL_ARGS[@]}" rl.reward=format train.max_steps=$learn_steps optim.init_lr_frac=0.5 \
  checkpoint.every=0 eval.every=$learn_steps run.dir="$tmp/learn" >"$tmp/learn.log" 2>&1 \
  || { cat "$tmp/learn.log"; fail "learning run"; }
"$py" - "$tmp/learn/metrics.jsonl" <<'PY' || fail "the format reward did not rise"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
rew = [x["reward"] for x in r if "reward" in x]
first, last = rew[0], sum(rew[-5:]) / 5  # step 1's samples are the SFT model's
print("reward mean per step:", " ".join(f"{x:.2f}" for x in rew))
print(f"learning: reward mean of step 1 {first:.3f} (must be < 0.15), of the last 5 steps {last:.3f} (must be > 0.8)")
sys.exit(0 if first < 0.15 and last > 0.8 else 1)
PY

# 3. Exact resume on 1 rank.
steps=12
chat_resume_check 1 rl "${RL_ARGS[@]}" rl.reward=format train.max_steps=$steps checkpoint.every=3 checkpoint.keep_last=0 \
  eval.every=6
final=step_$(printf %08d $steps)
cmp -s "$tmp/rl_a/ckpt/$final/model.safetensors" "$tmp/rl_b/ckpt/$final/model.safetensors" \
  || fail "final weights of the resumed run differ from the uninterrupted run's"
echo "ok: the resumed run's final weights are byte-identical"

# 4. Lanes, records, lineage, skipped row, report card.
"$py" - "$tmp/rl_a/metrics.jsonl" "$tmp/rl_a/ckpt/$final/meta.json" "$sft_step" <<'PY' || fail "records / lineage"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
steps = [r for r in recs if "reward" in r]
s1 = steps[0]
for k in ("loss", "grad_norm", "reward", "sample_len", "tool_rate", "questions", "sample_hash"):
    assert k in s1, f"step record lacks {k}: {s1}"
# rl.train's rows 0 and 1 are the same question (lanes 0 and 1 of step 1): own streams, other samples.
assert s1["questions"][:2] == [0, 1], s1["questions"]
assert s1["sample_hash"][0] != s1["sample_hash"][1], "lanes 0 and 1 drew the same samples: one shared RNG stream"
# Questions in order, 4 per step, over 201 kept rows (the row without an answer left out).
for i, r in enumerate(steps):
    assert r["questions"] == [(i * 4 + j) % 201 for j in range(4)], (i, r["questions"])
ev = [r for r in recs if "pass@k" in r]
assert [r["step"] for r in ev] == [0, 6, 12], [r["step"] for r in ev]
assert all(r["train_rows_skipped"] == 1 and r["k"] == 4 for r in ev), ev[0]
meta = json.load(open(sys.argv[2]))
assert meta["stage"] == "rl", meta["stage"]
assert meta["lineage"]["stage"] == "sft" and meta["lineage"]["parent"].rstrip("/") == sys.argv[3].rstrip("/"), meta["lineage"]
print(f"ok: step records (reward {s1['reward']}, sample_len {s1['sample_len']}, tool_rate {s1['tool_rate']}), "
      f"pass@1/pass@k at steps 0, 6, 12 (last: {ev[-1]['pass@1']}/{ev[-1]['pass@k']}), same prompt in lanes 0/1 -> "
      f"different samples, questions strided in order, stage rl <- sft")
PY
grep -q "1 row(s) without a parsable '#### <number>' answer skipped" "$tmp/rl_a.log" || fail "the skipped row is not reported"
./eval --task report --ckpt "$tmp/rl_a/ckpt" >"$tmp/report.log" 2>&1 || { cat "$tmp/report.log"; fail "./eval --task report"; }
report=$(ls "$tmp"/rl_a/ckpt/$final/report/report.md 2>/dev/null || find "$tmp/rl_a" -name report.md | head -1)
[ -n "$report" ] || { cat "$tmp/report.log"; fail "no report.md"; }
grep -q "^## rl" "$report" && grep -q "RL (format reward" "$report" && grep -q "rl_rl.png" "$report" \
  || { cat "$report"; fail "the report card lacks the RL section"; }
[ -s "$(dirname "$report")/rl_rl.png" ] || fail "no RL plot"
echo "ok: report card: $(grep "RL (format" "$report" | cut -c1-160)..."

# Refusals.
out=$(./rl "${RL_ARGS[@]}" init.from="$tmp/base/ckpt" run.dir="$tmp/bad1" 2>&1) && fail "./rl started from a base model"
grep -q "is a base model (.*stage: pretrain), not a chat model" <<<"$out" || fail "base-model refusal: $out"
out=$(./rl "${RL_ARGS[@]}" init.from= run.dir="$tmp/bad2" 2>&1) && fail "./rl started from random weights"
grep -q "init.from is not set" <<<"$out" || fail "no-init refusal: $out"
out=$(./rl "${RL_ARGS[@]}" rl.num_samples=6 run.dir="$tmp/bad3" 2>&1) && fail "./rl accepted 6 samples in passes of 8"
grep -q "rl.num_samples = 6 is not a multiple of train.device_batch_size = 8" <<<"$out" || fail "num_samples refusal: $out"
echo "ok: a base model, no init.from and rl.num_samples not a multiple of the device batch refused with the reason"
echo "PASS"
