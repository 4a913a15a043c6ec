#!/usr/bin/env bash
# The chat stages through the real binaries on 1 rank (CPU): tiny base -> ./midtrain -> ./sft.
# Each stage runs uninterrupted (A), and again (B) killed with SIGKILL after a step chosen at
# random, then resumed with --resume: every loss and validation record must equal run A's bit for
# bit. Then lineage in meta.json (stage, parent dir, step, sha256 of the parent's meta.json), and
# refusals that name the files: wrong-stage --resume, a shape contradicting the parent, another
# tokenizer than the parent's. Needs ../shared/data (else skips, exit 77).
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data, strip_timing
source tests/e2e/chat_data.sh  # chat_setup, MID_ARGS, SFT_ARGS, chat_resume_check
e2e_tmp  # tmp (removed on exit), fail

chat_setup "$tmp"
steps=12
extra=(train.max_steps=$steps checkpoint.every=3 checkpoint.keep_last=0 eval.every=6)
chat_resume_check 1 midtrain "${MID_ARGS[@]}" "${extra[@]}"
chat_resume_check 1 sft "${SFT_ARGS[@]}" "${extra[@]}"

# Lineage: sft's meta.json names mid_a's last step, its sha256, and mid's own lineage (base).
final=$tmp/sft_a/ckpt/step_$(printf %08d $steps)
parent=$tmp/mid_a/ckpt/step_$(printf %08d $steps)
python3 - "$final/meta.json" "$parent/meta.json" "$tmp/base/ckpt" <<'PY' || fail "lineage"
import hashlib, json, sys
meta, pmeta, base = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
lin = meta["lineage"]
assert meta["stage"] == "sft", meta["stage"]
assert lin["parent"].rstrip("/") == pmeta.rsplit("/", 1)[0], lin["parent"]
assert lin["step"] == 12 and lin["stage"] == "midtrain", lin
assert lin["meta_sha256"] == hashlib.sha256(open(pmeta, "rb").read()).hexdigest(), "sha256 of the parent's meta.json"
assert lin["lineage"]["stage"] == "pretrain" and lin["lineage"]["parent"].startswith(base), lin["lineage"]
print("ok: lineage sft <- midtrain step 12 (sha256 %s...) <- pretrain %s" % (lin["meta_sha256"][:12], lin["lineage"]["parent"]))
PY

# Refusals, each naming the files involved.
out=$(./midtrain --resume "$tmp/sft_a/ckpt" 2>&1) && fail "./midtrain resumed an sft checkpoint"
grep -q "resume it with ./sft --resume" <<<"$out" || fail "wrong-stage resume message: $out"
grep -q "$tmp/sft_a/ckpt" <<<"$out" || fail "wrong-stage resume message names no checkpoint: $out"
out=$(./sft "${SFT_ARGS[@]}" model.depth=3 run.dir="$tmp/bad1" 2>&1) && fail "./sft accepted model.depth=3 against a depth-4 parent"
grep -q "model.depth = 3 but the parent checkpoint .*mid_a/ckpt/step_00000012/meta.json has model.depth = 4" <<<"$out" \
  || fail "shape mismatch message: $out"
grep -q "tiny_sft.yaml" <<<"$out" || fail "shape mismatch message names no config: $out"
head -c 100000 "$tmp/input.txt" >"$tmp/other.txt"
./tokenizer train --vocab-size 300 --output "$tmp/other_tok.json" "$tmp/other.txt" >/dev/null || fail "second tokenizer"
out=$(./sft "${SFT_ARGS[@]}" data.tokenizer="$tmp/other_tok.json" run.dir="$tmp/bad2" 2>&1) && fail "./sft accepted another tokenizer"
grep -q "other_tok.json.*is not the tokenizer the parent checkpoint .*mid_a/ckpt/step_00000012/meta.json" <<<"$out" \
  || fail "tokenizer mismatch message: $out"
echo "ok: wrong-stage resume, shape mismatch and tokenizer mismatch refused naming the files"

# train.epochs sets the horizon from the data (rows per epoch / rows per step), and
# init.optimizer warm-starts the optimizer from the parent.
rows=$(python3 -c "import h5py,glob; print(sum(len(h5py.File(f)['doc_offsets']) - 1 for f in glob.glob('$tmp/chat/*/train_*.h5')))")
want=$(( rows / 5 / 8 ))  # epochs 0.2 over the mixture (each source once) at 8 rows per step
./sft "${SFT_ARGS[@]}" train.max_steps=-1 train.epochs=0.2 init.optimizer=true eval.every=0 run.dir="$tmp/epochs" \
  >"$tmp/epochs.log" 2>&1 || { cat "$tmp/epochs.log"; fail "train.epochs run"; }
grep -q "train.epochs = 0.2 over data.train -> train.max_steps = $want" "$tmp/epochs.log" \
  || { grep "train\]" "$tmp/epochs.log"; fail "train.epochs=0.2 over $rows rows did not give $want steps"; }
grep -q "\[init\] sft weights and optimizer state from" "$tmp/epochs.log" || fail "init.optimizer did not load the optimizer"
echo "ok: train.epochs=0.2 over $rows conversations -> $want steps of 8; init.optimizer warm start"
echo "PASS"
