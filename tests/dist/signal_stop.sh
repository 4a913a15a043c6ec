#!/usr/bin/env bash
# The real ./pretrain on 2 ranks (mpirun): SIGTERM to ONE rank near step 30 makes both ranks agree
# to stop at the next step boundary, checkpoint there, write STOPPED_EARLY and meta.json
# stopped_early=true and exit 0; `--resume` on 2 ranks then yields losses bit-identical to an
# uninterrupted 2-rank run. Needs mpirun and KILN_DATA; every wait is bounded.
source "$(dirname "$0")/lib.sh"
tiny_data "$tmp/data"
steps=60
args=("${TINY_ARGS[@]}" train.max_steps=$steps train.device_batch_size=8 train.total_batch_size=1024
      checkpoint.every=10 checkpoint.keep_last=0 eval.every=20)
"$root/tests/run_mpi.sh" 2 "$root/pretrain" "${args[@]}" run.dir="$tmp/a" >"$tmp/a.log" 2>&1 \
  || { cat "$tmp/a.log"; fail "uninterrupted 2-rank run"; }

run=$tmp/b
"$root/tests/run_mpi.sh" 2 "$root/pretrain" "${args[@]}" run.dir="$run" >"$tmp/b.log" 2>&1 &
job=$!
wait_steps "$run" 28 120
p1=$(rank_pid "$run" 1) || fail "no rank 1 process for $run"
kill -TERM "$p1"
set +e; wait "$job"; rc=$?; set -e
echo "sent SIGTERM to rank 1 (pid $p1) after step 28; job exit code $rc"
[ "$rc" = 0 ] || { cat "$tmp/b.log"; fail "the stopped job exited $rc, expected 0"; }
[ -e "$run/STOPPED_EARLY" ] || fail "no STOPPED_EARLY marker"
s=$(cat "$run/STOPPED_EARLY")
[ "$s" -ge 28 ] && [ "$s" -lt $steps ] || fail "stopped at step $s, expected 28..$((steps - 1))"
ck=$run/ckpt/$(printf 'step_%08d' "$s")
[ -e "$ck/DONE" ] || fail "no complete checkpoint at step $s"
python3 -c "import json,sys; sys.exit(0 if json.load(open('$ck/meta.json'))['stopped_early'] is True else 1)" \
  || fail "$ck/meta.json does not say stopped_early: true"
[ -e "$ck/optim_rank_00001.safetensors" ] || [ -e "$ck/optim_rank_00001.pt" ] || fail "rank 1 wrote no optimizer state"
[ "$(last_step "$run")" = "$s" ] || fail "metrics.jsonl goes to step $(last_step "$run"), the stop was at $s"
grep -q "stopped by signal at step $s" "$tmp/b.log" || fail "no 'stopped by signal' line"
echo "both ranks stopped at step $s, checkpointed (stopped_early in meta.json) and exited 0"

"$root/tests/run_mpi.sh" 2 "$root/pretrain" --resume "$run/ckpt" >"$tmp/b2.log" 2>&1 \
  || { cat "$tmp/b2.log"; fail "resumed 2-rank run"; }
grep -q "resumed from .*$(basename "$ck")" "$tmp/b2.log" || fail "did not resume from step $s"
[ ! -e "$run/STOPPED_EARLY" ] || fail "the resumed run left a STOPPED_EARLY marker"
diff <(strip_timing "$tmp/a/metrics.jsonl") <(strip_timing "$run/metrics.jsonl") >"$tmp/diff" \
  || { head -20 "$tmp/diff"; fail "losses differ between the uninterrupted and the stopped+resumed run"; }
[ "$(grep -c '"loss"' "$run/metrics.jsonl")" = $steps ] || fail "expected $steps loss records"
echo "PASS: SIGTERM on rank 1 -> agreed stop at step $s, exit 0; resumed steps $((s + 1))..$steps equal the uninterrupted run bit for bit"
