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
source tests/e2e/chat_data.sh  # chat_setup, MID_ARGS, SFT_ARGS
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
last_step() { grep -o '"step":[0-9]*,"loss"' "$1/metrics.jsonl" 2>/dev/null | tail -1 | grep -o '[0-9]*' || echo 0; }

chat_setup "$tmp"
steps=24
extra=(train.max_steps=$steps checkpoint.every=4 checkpoint.keep_last=0 eval.every=8)
for stage in midtrain sft; do
  if [ $stage = midtrain ]; then args=("${MID_ARGS[@]}" "${extra[@]}"); a=$tmp/mid_a; b=$tmp/mid_b
  else args=("${SFT_ARGS[@]}" "${extra[@]}"); a=$tmp/sft_a; b=$tmp/sft_b; fi
  ./$stage "${args[@]}" run.dir="$a" >"$a.log" 2>&1 || { cat "$a.log"; fail "$stage: uninterrupted run"; }
  grep -q "\[init\] $stage weights from $tmp/.*step_" "$a.log" || { cat "$a.log"; fail "$stage did not init from its parent"; }
  kill_at=$(( 5 + RANDOM % (steps - 8) ))  # after a checkpoint (every 4), before the end
  ./$stage "${args[@]}" run.dir="$b" >"$b.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 6000); do
    [ "$(last_step "$b")" -ge $kill_at ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.01
  done
  kill -9 $pid 2>/dev/null || fail "$stage run B ended before the kill at step $kill_at"
  wait $pid 2>/dev/null
  echo "$stage: killed run B with SIGKILL after step $(last_step "$b") (chosen: $kill_at)"
  [ -d "$b/ckpt/step_$(printf %08d $steps)" ] && fail "$stage run B finished before the kill"
  ./$stage --resume "$b/ckpt" >"$b.resume.log" 2>&1 || { cat "$b.resume.log"; fail "$stage: resumed run"; }
  grep -q "resumed from" "$b.resume.log" || fail "$stage: did not resume"
  diff <(strip_timing "$a/metrics.jsonl") <(strip_timing "$b/metrics.jsonl") >"$tmp/diff" \
    || { head -20 "$tmp/diff"; fail "$stage: losses differ between the uninterrupted and the resumed run"; }
  [ "$(grep -c '"loss"' "$b/metrics.jsonl")" = $steps ] || fail "$stage: expected $steps loss records"
  echo "ok: $stage resumed after SIGKILL equals the uninterrupted run bit for bit ($steps losses, $(grep -c val_loss "$b/metrics.jsonl") validation records)"
done

# Lineage: sft's meta.json names mid_a's last step, its sha256, and mid's own lineage (base).
final=$tmp/sft_a/ckpt/step_$(printf %08d $steps)
parent=$tmp/mid_a/ckpt/step_$(printf %08d $steps)
python3 - "$final/meta.json" "$parent/meta.json" "$tmp/base/ckpt" <<'PY' || fail "lineage"
import hashlib, json, sys
meta, pmeta, base = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
lin = meta["lineage"]
assert meta["stage"] == "sft", meta["stage"]
assert lin["parent"].rstrip("/") == pmeta.rsplit("/", 1)[0], lin["parent"]
assert lin["step"] == 24 and lin["stage"] == "midtrain", lin
assert lin["meta_sha256"] == hashlib.sha256(open(pmeta, "rb").read()).hexdigest(), "sha256 of the parent's meta.json"
assert lin["lineage"]["stage"] == "pretrain" and lin["lineage"]["parent"].startswith(base), lin["lineage"]
print("ok: lineage sft <- midtrain step 24 (sha256 %s...) <- pretrain %s" % (lin["meta_sha256"][:12], lin["lineage"]["parent"]))
PY

# Refusals, each naming the files involved.
out=$(./midtrain --resume "$tmp/sft_a/ckpt" 2>&1) && fail "./midtrain resumed an sft checkpoint"
grep -q "resume it with ./sft --resume" <<<"$out" || fail "wrong-stage resume message: $out"
grep -q "$tmp/sft_a/ckpt" <<<"$out" || fail "wrong-stage resume message names no checkpoint: $out"
out=$(./sft "${SFT_ARGS[@]}" model.depth=3 run.dir="$tmp/bad1" 2>&1) && fail "./sft accepted model.depth=3 against a depth-4 parent"
grep -q "model.depth = 3 but the parent checkpoint .*mid_a/ckpt/step_00000024/meta.json has model.depth = 4" <<<"$out" \
  || fail "shape mismatch message: $out"
grep -q "tiny_sft.yaml" <<<"$out" || fail "shape mismatch message names no config: $out"
head -c 100000 "$tmp/input.txt" >"$tmp/other.txt"
./tokenizer train --vocab-size 300 --output "$tmp/other_tok.json" "$tmp/other.txt" >/dev/null || fail "second tokenizer"
out=$(./sft "${SFT_ARGS[@]}" data.tokenizer="$tmp/other_tok.json" run.dir="$tmp/bad2" 2>&1) && fail "./sft accepted another tokenizer"
grep -q "other_tok.json.*is not the tokenizer the parent checkpoint .*mid_a/ckpt/step_00000024/meta.json" <<<"$out" \
  || fail "tokenizer mismatch message: $out"
echo "ok: wrong-stage resume, shape mismatch and tokenizer mismatch refused naming the files"
echo "PASS"
