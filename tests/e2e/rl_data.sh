# Sourced by the ./rl tests (after tiny_data.sh and chat_data.sh): rl_setup DIR makes the tiny
# base model (chat_setup), a synthetic arithmetic task and a tiny SFT model on it, and sets
# RL_ARGS (configs/tiny_rl.yaml on that model and task, seq_len 128).
# The task: "What is a plus b?" as GSM8K rows (rl.train: DIR/arith_rl.jsonl, with row 0 repeated as
# row 1 so that two lanes of step 1 get the same prompt, and one row without a '#### <number>'
# answer that ./rl must count and skip; rl.val: DIR/arith_val.jsonl). The SFT conversations answer
# "The answer is c." and in 1 of 10 cases "#### c", so the SFT model rarely writes a '#### <number>'
# answer: rl.reward=format has something rare to learn.
rl_setup() {
  local dir=$1 root=${KILN_ROOT_DIR:-$root}
  chat_setup "$dir"
  "${KILN_PYTHON:-python3}" - "$dir" <<'PY' || { echo "FAIL: rl task data" >&2; exit 1; }
import json, random, sys
d = sys.argv[1]
rng = random.Random(7)
def qa():
    a, b = rng.randint(1, 49), rng.randint(1, 49)
    return f"What is {a} plus {b}?", a + b
chats = []
for i in range(600):
    q, c = qa()
    reply = f"#### {c}" if i % 10 == 0 else f"The answer is {c}."
    chats.append({"id": f"arith_{i}", "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": reply}]})
json.dump(chats, open(f"{d}/arith_chat.json", "w"))
rows = []
for i in range(200):
    q, c = qa()
    rows.append({"question": q, "answer": f"{q[8:-1]} = {c}.\n#### {c}"})
rows.insert(1, dict(rows[0]))                                          # row 1 = row 0: same prompt, two lanes
rows.insert(5, {"question": "What is up?", "answer": "Nothing much."})  # no '#### <number>': skipped
with open(f"{d}/arith_rl.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
with open(f"{d}/arith_val.jsonl", "w") as f:
    for i in range(16):
        q, c = qa()
        f.write(json.dumps({"question": q, "answer": f"#### {c}"}) + "\n")
PY
  "$root/prepare" --chat --tokenizer "$dir/tok.json" --output "$dir/chat/arith" --val-fraction 0.05 --max-len 129 \
    "$dir/arith_chat.json" >/dev/null 2>&1 || { echo "FAIL: prepare --chat arith" >&2; exit 1; }
  "$root/sft" "$root/configs/tiny_sft.yaml" init.from="$dir/base/ckpt" data.tokenizer="$dir/tok.json" model.seq_len=128 \
    "data.train=$dir/chat/arith/train_*.h5" "data.val=$dir/chat/arith/val_*.h5" train.device_batch_size=16 \
    train.total_batch_size=2048 train.max_steps=${RL_SFT_STEPS:-60} optim.init_lr_frac=1.0 eval.every=0 \
    eval.sample_every=0 checkpoint.every=0 log.every=20 run.dir="$dir/sft" >"$dir/sft.log" 2>&1 \
    || { cat "$dir/sft.log"; echo "FAIL: sft of the arithmetic task" >&2; exit 1; }
  RL_ARGS=("$root/configs/tiny_rl.yaml" init.from="$dir/sft/ckpt" data.tokenizer="$dir/tok.json" model.seq_len=128
           rl.train="$dir/arith_rl.jsonl" rl.val="$dir/arith_val.jsonl" rl.max_new_tokens=12 rl.eval_examples=8
           rl.eval_samples=4 log.every=4)
}
