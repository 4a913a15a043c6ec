#!/usr/bin/env bash
# ./rl on 2 ranks (mpirun, CPU), from the tiny SFT model of tests/e2e/rl_data.sh:
#  - run A uninterrupted, run B with both ranks SIGKILLed after a random step and --resume'd on 2
#    ranks: every record (losses, rewards, questions and sample hashes of every lane, pass@k) equal
#    bit for bit (chat_resume_check);
#  - 2 ranks = 1 rank with the same global batch (4 questions x 8 samples per step): the same
#    questions in every step, the same samples in step 1 (lanes own their RNG streams whatever the
#    world), losses within the SFT parity bound while the samples agree, final weights within its
#    weight bound when every step drew the same samples;
#  - resharding: run B killed at a random step on 2 ranks and resumed on 1 rank sees the same
#    questions in the same steps as run A, with losses within the same bound while samples agree.
source "$(dirname "$0")/lib.sh"
python3 -c "import safetensors.torch" 2>/dev/null || { echo "skipped: python3 without safetensors/torch"; exit 77; }
source "$root/tests/e2e/chat_data.sh"  # chat_setup, chat_resume_check
source "$root/tests/e2e/rl_data.sh"    # rl_setup, RL_ARGS
rl_setup "$tmp"
steps=12
args=("${RL_ARGS[@]}" rl.reward=format train.max_steps=$steps checkpoint.every=3 checkpoint.keep_last=0 eval.every=6)
chat_resume_check 2 rl "${args[@]}"
grep -q "4096 tokens per step = 2 ranks x 8 seqs x 128 tokens x 2 accumulation" "$tmp/rl_a.log" || fail "not 2 ranks"

# 1 rank, the same global batch.
"$root/rl" "${args[@]}" run.dir="$tmp/np1" >"$tmp/np1.log" 2>&1 || { cat "$tmp/np1.log"; fail "1-rank run"; }
# Resharding: a 2-rank run killed at a random step (after a checkpoint), resumed on 1 rank.
kill_at=$(( 4 + RANDOM % (steps - 6) ))
"$root/tests/run_mpi.sh" 2 "$root/rl" "${args[@]}" run.dir="$tmp/rs" >"$tmp/rs.log" 2>&1 &
pid=$!
for _ in $(seq 1 30000); do
  [ "$(chat_last_step "$tmp/rs")" -ge $kill_at ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.01
done
for r in 0 1; do p=$(rank_pid "$tmp/rs" $r) || fail "no rank $r"; kill -9 "$p"; done
wait $pid 2>/dev/null || true
echo "reshard: SIGKILLed the 2-rank run after step $(chat_last_step "$tmp/rs") (chosen at random: $kill_at)"
"$root/rl" --resume "$tmp/rs/ckpt" >"$tmp/rs.resume.log" 2>&1 || { cat "$tmp/rs.resume.log"; fail "resume on 1 rank"; }
grep -q "resharded: saved by 2 rank(s), resumed on 1" "$tmp/rs.resume.log" || fail "not resharded"

# SFT parity bounds (tests/dist/sft_parity.sh).
python3 - "$tmp/rl_a" "$tmp/np1" "$tmp/rs" $steps <<'PY' || fail "2 ranks vs 1 rank / resharding"
import json, sys
from safetensors.torch import load_file
LOSS, WEIGHT = 1e-5, 3e-4
def recs(run):
    return {r["step"]: r for r in map(json.loads, open(f"{run}/metrics.jsonl")) if "reward" in r}
def compare(a, b, label):
    ra, rb = recs(a), recs(b)
    assert sorted(ra) == sorted(rb) == list(range(1, int(sys.argv[4]) + 1)), (sorted(ra), sorted(rb))
    same_q = all(ra[s]["questions"] == rb[s]["questions"] for s in ra)
    assert same_q, f"{label}: other questions in some step"
    assert ra[1]["sample_hash"] == rb[1]["sample_hash"], f"{label}: step 1 drew other samples"
    agree = [s for s in sorted(ra) if all(ra[t]["sample_hash"] == rb[t]["sample_hash"] for t in range(1, s + 1))]
    dl = max(abs(ra[s]["loss"] - rb[s]["loss"]) for s in agree)
    print(f"{label}: same questions in all {len(ra)} steps; same samples in steps 1-{agree[-1]}; "
          f"max |dloss| over those {dl:.2e} (bound {LOSS})", end="")
    assert dl <= LOSS, f"{label}: losses differ by {dl}"
    if len(agree) == len(ra):
        last = f"step_{len(ra):08d}/model.safetensors"
        wa, wb = load_file(f"{a}/ckpt/{last}"), load_file(f"{b}/ckpt/{last}")
        dw = max((wa[k] - wb[k]).abs().max().item() for k in wa)
        print(f"; final weights max |dw| {dw:.2e} (bound {WEIGHT})")
        assert dw <= WEIGHT, f"{label}: weights differ by {dw}"
    else:
        print(" (samples diverged later: weights not compared)")
compare(sys.argv[1], sys.argv[2], "2 ranks vs 1 rank")
compare(sys.argv[1], sys.argv[3], "2 ranks resumed on 1 rank vs 2 ranks")
PY
echo "PASS"
