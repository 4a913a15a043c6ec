#!/usr/bin/env bash
# model.arch nanochat2 (issue 22) under ZeRO-1 through the real ./pretrain under mpirun, CPU: its
# parameter groups (value embeddings, lambdas, smear: owners hold whole parameters) keep ZeRO-1's
# promises:
#  1. 2 ranks ZeRO-1 = 2 ranks DDP (losses within 1e-5, weights within 1e-6);
#  2. exact resume after SIGKILL of both ranks at a random step: every loss, the final weights and
#     both ranks' optimizer files bit-identical to the uninterrupted run;
#  3. reshard 2 -> 1: the step-8 checkpoint of the 2-rank run resumed on 1 rank to the end, within
#     the tolerances of dist.zero1 (loss and val 1e-5, weights 3e-4).
# Needs mpirun, python3 with torch + safetensors, KILN_DATA.
source "$(dirname "$0")/lib.sh"
py=${KILN_PYTHON:-python3}
"$py" -c "import safetensors.torch" 2>/dev/null || { echo "skipped: $py without safetensors/torch"; exit 77; }
tiny_data "$tmp/data"
steps=16
args=("${TINY_ARGS[@]}" model.arch=nanochat2 model.short_window=16 model.n_kv_head=2 train.grad_clip=0
      train.max_steps=$steps train.device_batch_size=4 train.total_batch_size=1024
      checkpoint.keep_last=0 eval.every=8 log.every=8)
mpi() { "$root/tests/run_mpi.sh" 2 "$root/pretrain" "$@"; }

# ---- 1. ZeRO-1 = DDP ---------------------------------------------------------------------------
mpi "${args[@]}" checkpoint.every=0 run.dir="$tmp/ddp" >"$tmp/ddp.log" 2>&1 || { tail -30 "$tmp/ddp.log"; fail "DDP run"; }
mpi "${args[@]}" checkpoint.every=8 dist.zero1=true run.dir="$tmp/z" >"$tmp/z.log" 2>&1 \
  || { tail -30 "$tmp/z.log"; fail "ZeRO-1 run"; }
grep -q "ZeRO-1: each reduced to its owner rank" "$tmp/z.log" || fail "the ZeRO-1 run did not use ZeRO-1"
cmp=$("$py" "$root/tests/dist/compare_runs.py" "$tmp/z" "$tmp/ddp" $steps) || fail "compare: $cmp"
echo "nanochat2, ZeRO-1 vs DDP, 2 ranks, $steps steps: $cmp (bounds: loss 1e-5, weights 1e-6)"
le "$(val "$cmp" loss)" 1e-5 || fail "ZeRO-1 losses differ from DDP by more than 1e-5"
le "$(val "$cmp" weights)" 1e-6 || fail "ZeRO-1 weights differ from DDP by more than 1e-6"

# ---- 2. exact resume after SIGKILL ---------------------------------------------------------------
run=$tmp/k
kill_at=$(( 5 + RANDOM % 9 ))
mpi "${args[@]}" checkpoint.every=4 dist.zero1=true run.dir="$run" >"$tmp/k1.log" 2>&1 &
job=$!
wait_steps "$run" $kill_at 120
kill_ranks "$run" KILL
set +e; wait $job; set -e
echo "SIGKILLed both ZeRO-1 ranks after step $(last_step "$run") (chosen at random: $kill_at)"
[ -d "$(step_dir "$run" $steps)" ] && fail "the run finished before the kill"
mpi --resume "$run/ckpt" run.dir="$run" >"$tmp/k2.log" 2>&1 || { tail -20 "$tmp/k2.log"; fail "resume after SIGKILL"; }
diff <(strip_timing "$tmp/z/metrics.jsonl") <(strip_timing "$run/metrics.jsonl") >"$tmp/diff" \
  || { head "$tmp/diff"; fail "nanochat2 ZeRO-1 losses after SIGKILL + resume differ from the uninterrupted run"; }
for f in model.safetensors optim_rank_00000.safetensors optim_rank_00001.safetensors; do
  cmp -s "$(step_dir "$tmp/z" $steps)/$f" "$(step_dir "$run" $steps)/$f" || fail "final $f differs"
done
echo "nanochat2 ZeRO-1 resume after SIGKILL: all $steps losses, the final weights and both optimizer files bit-identical"

# ---- 3. reshard 2 -> 1 ---------------------------------------------------------------------------
r=$tmp/r
reshard_one "$tmp/z" 8 "$r"
cmp=$("$py" "$root/tests/dist/compare_runs.py" "$r" "$tmp/z" $steps) || fail "compare: $cmp"
echo "nanochat2 reshard 2 -> 1 ranks (ZeRO-1 checkpoint of step 8) vs uninterrupted 2 ranks: $cmp"
le "$(val "$cmp" loss)" 1e-5 || fail "resharded losses differ by more than 1e-5"
le "$(val "$cmp" val)" 1e-5 || fail "resharded validation losses differ by more than 1e-5"
le "$(val "$cmp" weights)" 3e-4 || fail "resharded weights differ by more than 3e-4"
echo "PASS"
