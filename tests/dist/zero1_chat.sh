#!/usr/bin/env bash
# A chat stage resumed on another world size (issue 14): ./sft (padded rows, masked loss, init
# from a tiny base) with dist.zero1=true on 2 ranks to step 6, SIGKILLed, then `--resume` of step 6
# on 1 rank to step 12: losses and validation within 1e-5 of an uninterrupted 2-rank run (the
# ChatLoader cursor is remapped 2 -> 1 ranks; only the summation order differs). Needs mpirun,
# python3 with torch + safetensors, KILN_DATA.
source "$(dirname "$0")/lib.sh"
source "$root/tests/e2e/chat_data.sh"  # chat_setup, SFT_ARGS
py=${KILN_PYTHON:-python3}
"$py" -c "import safetensors.torch" 2>/dev/null || { echo "skipped: $py without safetensors/torch"; exit 77; }
chat_setup "$tmp"
steps=12
args=("${SFT_ARGS[@]}" init.from="$tmp/base/ckpt" train.max_steps=$steps checkpoint.keep_last=0 eval.every=6
      dist.zero1=true)
mpi() { "$root/tests/run_mpi.sh" 2 "$root/sft" "$@"; }
mpi "${args[@]}" checkpoint.every=0 run.dir="$tmp/a" >"$tmp/a.log" 2>&1 || { tail -20 "$tmp/a.log"; fail "2-rank SFT"; }
mpi "${args[@]}" checkpoint.every=6 run.dir="$tmp/b" >"$tmp/b.log" 2>&1 &
job=$!
six=$tmp/b/ckpt/step_00000006
deadline=$(( $(date +%s) + 180 ))
until [ -e "$six/DONE" ]; do [ "$(date +%s)" -lt "$deadline" ] || fail "no checkpoint at step 6"; sleep 0.02; done
for r in 0 1; do p=$(rank_pid "$tmp/b" $r) && kill -KILL "$p" 2>/dev/null || true; done
wait $job 2>/dev/null || true
"$root/sft" --resume "$six" run.dir="$tmp/b" >"$tmp/b1.log" 2>&1 || { tail -20 "$tmp/b1.log"; fail "1-rank resume"; }
grep -q "resharded: saved by 2 rank(s), resumed on 1" "$tmp/b1.log" || fail "the SFT resume did not reshard"
cmp=$("$py" "$root/tests/dist/compare_runs.py" "$tmp/b" "$tmp/a" $steps) || fail "compare: $cmp"
echo "SFT 2 ranks (ZeRO-1) -> SIGKILL -> step 6 resumed on 1 rank vs 2 ranks throughout: $cmp (bounds: loss 1e-5, weights 3e-4)"
val() { sed -E "s/.*$2=([^ ]*).*/\1/" <<<"$1"; }
le() { "$py" -c "import sys; sys.exit(0 if float('$1') <= float('$2') else 1)"; }
le "$(val "$cmp" loss)" 1e-5 || fail "losses differ by more than 1e-5"
le "$(val "$cmp" val)" 1e-5 || fail "validation losses differ by more than 1e-5"
le "$(val "$cmp" weights)" 3e-4 || fail "weights differ by more than 3e-4"
echo "PASS"
