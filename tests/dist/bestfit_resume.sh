#!/usr/bin/env bash
# data.layout bestfit (issue 22) through the real ./pretrain, CPU, tiny nanochat2 on tinyshakespeare
# speeches (one document each): the best-fit packing state is part of the cursor, so
#  1. 1 rank: SIGKILL at a random step + --resume equals the uninterrupted run bit for bit (every
#     loss and cropped_tokens record, the final weights); ./eval --task bpb gives the Trainer's
#     val bpb (the same best-fit validation rows);
#  2. 2 ranks: the same after SIGKILL of both ranks; the 2-rank run packs the same global rows as
#     the 1-rank run (per-step cropped_tokens equal);
#  3. reshard 2 -> 1: the 2-rank run's step-8 checkpoint resumed on 1 rank reads the same rows
#     (cropped_tokens equal every step) and stays within dist.zero1's tolerances (loss and val 1e-5,
#     weights 3e-4).
#  0. data of one long document is refused with a clear error (best-fit would repeat its start).
# Needs mpirun, python3 with safetensors + torch, KILN_DATA.
source "$(dirname "$0")/lib.sh"
py=${KILN_PYTHON:-python3}
"$py" -c "import safetensors.torch" 2>/dev/null || { echo "skipped: $py without safetensors/torch"; exit 77; }
tiny_docs "$tmp/data"
steps=16
args=("${DOCS_ARGS[@]}" model.arch=nanochat2 model.short_window=16 model.n_kv_head=2 train.grad_clip=0
      train.max_steps=$steps train.device_batch_size=4 train.total_batch_size=1024
      checkpoint.keep_last=0 eval.every=8 log.every=8)
mpi() { "$root/tests/run_mpi.sh" 2 "$root/pretrain" "$@"; }
crops() { grep -o '"step":[0-9]*,.*"cropped_tokens":[0-9]*' "$1/metrics.jsonl" | sed -E 's/"step":([0-9]*),.*"cropped_tokens":/\1 /'; }
same_run() {  # RUN_A RUN_B WHAT: metrics (less timing) and final weights bit-identical
  diff <(strip_timing "$1/metrics.jsonl") <(strip_timing "$2/metrics.jsonl") >"$tmp/diff" \
    || { head "$tmp/diff"; fail "$3: the resumed run's metrics differ from the uninterrupted run"; }
  cmp -s "$(step_dir "$1" $steps)/model.safetensors" "$(step_dir "$2" $steps)/model.safetensors" \
    || fail "$3: final weights differ"
}

# ---- 0. data of one long document (tinyshakespeare as one text file): a clear refusal ----------
tiny_data "$tmp/one"
if "$root/pretrain" "${TINY_ARGS[@]}" data.layout=bestfit train.max_steps=1 run.dir="$tmp/one/run" >"$tmp/one.log" 2>&1; then
  fail "bestfit on a single document did not refuse"
fi
grep -q "longer than a row" "$tmp/one.log" && ! grep -qi "terminate\|stack" "$tmp/one.log" \
  || { cat "$tmp/one.log"; fail "bestfit on a single document: no clear error"; }
echo "ok: bestfit on one long document refuses: $(grep -o 'every one of.*' "$tmp/one.log" | head -1)"

# ---- 1. one rank: SIGKILL + resume ---------------------------------------------------------------
"$root/pretrain" "${args[@]}" checkpoint.every=8 run.dir="$tmp/a" >"$tmp/a.log" 2>&1 || { tail -30 "$tmp/a.log"; fail "1-rank run"; }
grep -q "cropped .*%" "$tmp/a.log" || { tail "$tmp/a.log"; fail "the step log line does not report the cropped share"; }
[ "$(crops "$tmp/a" | wc -l)" -eq $steps ] || fail "metrics.jsonl lacks cropped_tokens"
awk '$2 > 0 { n++ } END { exit !(n > 0) }' <(crops "$tmp/a") || fail "no step cropped a token: the check is vacuous"
# ./eval --task bpb reads the Trainer's best-fit validation rows: the Trainer's last val_bpb.
"$root/eval" --ckpt "$tmp/a/ckpt" --task bpb >"$tmp/eval.txt" 2>&1 || { cat "$tmp/eval.txt"; fail "./eval --task bpb"; }
"$py" - "$tmp/a/ckpt/eval/bpb.json" "$tmp/a/metrics.jsonl" <<'PY' || fail "./eval's bpb differs from the Trainer's"
import json, sys
r = json.load(open(sys.argv[1]))
val = [json.loads(l) for l in open(sys.argv[2]) if '"val_bpb"' in l][-1]
print(f"./eval bpb {r['score']:.9f} vs Trainer val_bpb {val['val_bpb']:.9f} at step {val['step']}")
assert abs(r["score"] - val["val_bpb"]) <= 1e-6 * val["val_bpb"]
PY
run=$tmp/k1
kill_at=$(( 5 + RANDOM % 9 ))
"$root/pretrain" "${args[@]}" checkpoint.every=4 run.dir="$run" >"$tmp/k1.log" 2>&1 &
kill_at_step $! "$run/metrics.jsonl" $kill_at || fail "the 1-rank run ended before the kill"
echo "SIGKILLed the 1-rank run after step $(last_step "$run") (chosen at random: $kill_at)"
"$root/pretrain" --resume "$run/ckpt" run.dir="$run" >"$tmp/k1b.log" 2>&1 || { tail -20 "$tmp/k1b.log"; fail "1-rank resume"; }
grep -q '"packing"' "$run"/ckpt/step_*/state_rank_0*.json || fail "the checkpoint's cursor holds no packing state"
same_run "$tmp/a" "$run" "1 rank"
echo "ok: 1 rank, bestfit, SIGKILL + resume: all $steps losses, crops and the final weights bit-identical"

# ---- 2. two ranks: SIGKILL + resume; the same global rows as one rank ------------------------------
mpi "${args[@]}" checkpoint.every=8 run.dir="$tmp/z" >"$tmp/z.log" 2>&1 || { tail -30 "$tmp/z.log"; fail "2-rank run"; }
diff <(crops "$tmp/a") <(crops "$tmp/z") >/dev/null || fail "2 ranks packed other rows than 1 rank (cropped_tokens differ)"
run=$tmp/k2
kill_at=$(( 5 + RANDOM % 9 ))
mpi "${args[@]}" checkpoint.every=4 run.dir="$run" >"$tmp/k2.log" 2>&1 &
job=$!
wait_steps "$run" $kill_at 120
kill_ranks "$run" KILL
set +e; wait $job; set -e
echo "SIGKILLed both ranks after step $(last_step "$run") (chosen at random: $kill_at)"
[ -d "$(step_dir "$run" $steps)" ] && fail "the run finished before the kill"
mpi --resume "$run/ckpt" run.dir="$run" >"$tmp/k2b.log" 2>&1 || { tail -20 "$tmp/k2b.log"; fail "2-rank resume"; }
same_run "$tmp/z" "$run" "2 ranks"
echo "ok: 2 ranks, bestfit, SIGKILL + resume: bit-identical; per-step crops equal the 1-rank run's"

# ---- 3. reshard 2 -> 1 ---------------------------------------------------------------------------
r=$tmp/r
reshard_one "$tmp/z" 8 "$r"
diff <(crops "$tmp/z") <(crops "$r") >/dev/null || fail "the resharded run packed other rows (cropped_tokens differ)"
cmp=$("$py" "$root/tests/dist/compare_runs.py" "$r" "$tmp/z" $steps) || fail "compare: $cmp"
echo "bestfit reshard 2 -> 1 ranks (checkpoint of step 8) vs uninterrupted 2 ranks: $cmp; crops equal every step"
le "$(val "$cmp" loss)" 1e-5 || fail "resharded losses differ by more than 1e-5"
le "$(val "$cmp" val)" 1e-5 || fail "resharded validation losses differ by more than 1e-5"
le "$(val "$cmp" weights)" 3e-4 || fail "resharded weights differ by more than 3e-4"
echo "PASS"
