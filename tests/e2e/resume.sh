#!/usr/bin/env bash
# Exact resume on CPU, end to end through the real binaries: tokenizer -> prepare -> pretrain.
# Run A trains 60 steps uninterrupted. Run B is SIGKILLed once it has logged step 33 (its last
# checkpoint is step 30), then resumed with --resume: every loss from step 31 on, and the
# validation losses, must equal run A's bit for bit (metrics.jsonl prints float32 losses with 9
# significant digits, which round-trip exactly). The resume restates two overrides unchanged (allowed);
# a changing one is refused. Needs ../shared/data (else skips, exit 77).
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data, strip_timing, kill_at_step
e2e_tmp  # tmp (removed on exit), fail

tiny_data "$tmp"
args=("${TINY_ARGS[@]}" train.max_steps=60 train.device_batch_size=8 train.total_batch_size=1024
      checkpoint.every=10 checkpoint.keep_last=0
      eval.every=20 eval.tokens=8192 log.every=20)

./pretrain "${args[@]}" run.dir="$tmp/a" >"$tmp/a.log" 2>&1 || { cat "$tmp/a.log"; fail "uninterrupted run"; }

# Starting afresh over a finished run's checkpoints is refused (keep_last would prune them).
err=$(./pretrain "${args[@]}" run.dir="$tmp/a" 2>&1 >/dev/null) && fail "a fresh run over existing checkpoints started"
grep -q "already holds checkpoints" <<<"$err" || fail "unexpected message: $err"

./pretrain "${args[@]}" run.dir="$tmp/b" >"$tmp/b.log" 2>&1 &
kill_at_step $! "$tmp/b/metrics.jsonl" 33 || fail "run B ended before it could be killed at step 33"
last=$(grep -o '"step":[0-9]*,"loss"' "$tmp/b/metrics.jsonl" | tail -1)
echo "killed run B with SIGKILL after $last"
[ -d "$tmp/b/ckpt/step_00000030" ] || fail "no step 30 checkpoint in run B"
[ -d "$tmp/b/ckpt/step_00000060" ] && fail "run B reached step 60 before the kill"

# An override that would change the math is refused; restating the run's own values is accepted
# (a requeued Slurm job repeats its command line).
./pretrain --resume "$tmp/b/ckpt" train.max_steps=61 >"$tmp/bad.log" 2>&1 && fail "--resume accepted train.max_steps=61"
grep -q "would change the math" "$tmp/bad.log" || { cat "$tmp/bad.log"; fail "no clear message for a math override"; }
./pretrain --resume "$tmp/b/ckpt" train.max_steps=60 train.device_batch_size=8 >"$tmp/b2.log" 2>&1 \
  || { cat "$tmp/b2.log"; fail "resumed run"; }
grep -q "resumed from .*step_00000030" "$tmp/b2.log" || { cat "$tmp/b2.log"; fail "did not resume from step 30"; }

# Compare every loss and validation record, timing fields removed.
diff <(strip_timing "$tmp/a/metrics.jsonl") <(strip_timing "$tmp/b/metrics.jsonl") > "$tmp/diff" \
  || { head -20 "$tmp/diff"; fail "losses differ between the uninterrupted and the resumed run"; }
n=$(grep -c '"loss"' "$tmp/b/metrics.jsonl")
[ "$n" = 60 ] || fail "expected 60 loss records after resume, found $n"
echo "ok: steps 31..60 of the resumed run equal the uninterrupted run bit for bit ($(grep -c val_loss "$tmp/b/metrics.jsonl") validation records too)"
