#!/usr/bin/env bash
# optim.recipe muon_adamw (nanochat's current MuonAdamW: NorMuon's second moments, per-role AdamW
# groups) under ZeRO-1 through the real ./pretrain on 2 ranks (CPU, mpirun):
#  1. SIGKILL of both ranks after step 7, --resume from step 4 on 2 ranks: bit-identical to the
#     uninterrupted 2-rank run (each owner wrote and reads back its parameters' state by name);
#  2. reshard 2 -> 1: a 2-rank run SIGKILLed after its step 4 checkpoint, resumed on 1 rank:
#     losses within 1e-5 and weights within 3e-4 of the uninterrupted 2-rank run (zero1.sh's bounds).
# Needs mpirun, python3 with torch + safetensors, KILN_DATA.
source "$(dirname "$0")/lib.sh"
py=${KILN_PYTHON:-python3}
"$py" -c "import safetensors.torch" 2>/dev/null || { echo "skipped: $py without safetensors/torch"; exit 77; }
tiny_data "$tmp/data"
steps=12
args=("${TINY_ARGS[@]}" optim.recipe=muon_adamw train.grad_clip=0 train.max_steps=$steps train.device_batch_size=4
      train.total_batch_size=1024 optim.warmup_steps=2 optim.muon_momentum_warmup=4 dist.zero1=true
      checkpoint.every=4 checkpoint.keep_last=0 eval.every=4 log.every=4)
mpi() { "$root/tests/run_mpi.sh" 2 "$root/pretrain" "$@"; }
step_dir() { printf "%s/ckpt/step_%08d" "$1" "$2"; }
kill_ranks() { local r p; for r in 0 1; do p=$(rank_pid "$1" $r) && kill "-$2" "$p" 2>/dev/null || true; done; }
le() { "$py" -c "import sys; sys.exit(0 if float('$1') <= float('$2') else 1)"; }
val() { sed -E "s/.*$2=([^ ]*).*/\1/" <<<"$1"; }
# wait_done STEP_DIR SECONDS: until that checkpoint is complete (DONE is an empty file).
wait_done() {
  local deadline=$(( $(date +%s) + $2 ))
  until [ -e "$1/DONE" ]; do [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after $2 s waiting for $1/DONE"; sleep 0.02; done
}

mpi "${args[@]}" run.dir="$tmp/z" >"$tmp/z.log" 2>&1 || { tail -30 "$tmp/z.log"; fail "uninterrupted 2-rank run"; }
grep -q "ZeRO-1: each reduced to its owner rank" "$tmp/z.log" || fail "the run did not use ZeRO-1"
"$py" -c "
from safetensors import safe_open; import glob
for f in glob.glob('$(step_dir "$tmp/z" $steps)/optim*'):
    print('\n'.join(safe_open(f, 'pt').keys()))" >"$tmp/keys" || fail "cannot read the optimizer files"
grep -q "second_momentum_buffer" "$tmp/keys" || fail "no NorMuon state in the optimizer files"

# ---- 1. exact resume after SIGKILL on 2 ranks ----
run=$tmp/k
mpi "${args[@]}" run.dir="$run" >"$tmp/k1.log" 2>&1 &
job=$!
wait_steps "$run" 7 120
kill_ranks "$run" KILL; wait $job 2>/dev/null || true
killed=$(last_step "$run")
[ -e "$(step_dir "$run" 4)/DONE" ] || fail "no step 4 checkpoint before the kill"
[ -e "$(step_dir "$run" $steps)/DONE" ] && fail "the run finished before the kill"
mpi --resume "$(step_dir "$run" 4)" run.dir="$run" >"$tmp/k2.log" 2>&1 || { tail -20 "$tmp/k2.log"; fail "2-rank resume"; }
diff <(strip_timing "$tmp/z/metrics.jsonl") <(strip_timing "$run/metrics.jsonl") >"$tmp/diff" \
  || { head -20 "$tmp/diff"; fail "the resumed 2-rank ZeRO-1 run differs from the uninterrupted one"; }
echo "ok: 2 ranks ZeRO-1, killed after step $killed, resumed from step 4: bit-identical"

# ---- 2. reshard 2 -> 1 ----
run=$tmp/rs
mpi "${args[@]}" run.dir="$run" >"$tmp/rs1.log" 2>&1 &
job=$!
wait_done "$(step_dir "$run" 4)" 120
kill_ranks "$run" KILL; wait $job 2>/dev/null || true
"$root/pretrain" --resume "$(step_dir "$run" 4)" run.dir="$run" >"$tmp/rs2.log" 2>&1 || { tail -20 "$tmp/rs2.log"; fail "1-rank resume"; }
grep -q "resharded: saved by 2 rank(s), resumed on 1" "$tmp/rs2.log" || fail "the resume did not reshard 2 -> 1"
cmp=$("$py" "$root/tests/dist/compare_runs.py" "$run" "$tmp/z" $steps) || fail "compare: $cmp"
echo "reshard 2 -> 1 vs uninterrupted 2 ranks: $cmp (bounds: loss 1e-5, weights 3e-4)"
le "$(val "$cmp" loss)" 1e-5 || fail "resharded losses differ by more than 1e-5"
le "$(val "$cmp" weights)" 3e-4 || fail "resharded weights differ by more than 3e-4"
