#!/usr/bin/env bash
# The real ./pretrain on two namespace "nodes" (tests/multinode/lib.sh), 2 ranks per node, started
# by launch/pretrain.sh (run A: slurm/pretrain_multinode.sbatch's mpirun line) with a hostfile,
# TCP only, run dirs on a bind-mounted "shared disk":
#  1. 4 ranks on 2 nodes (batch B per rank) = 1 rank with 4B, within the dist parity bounds, while
#     a wrong setup (1 rank, B) lands far outside them;
#  2. SIGTERM to every rank of the job on both nodes: all agree on one step, checkpoint it, exit 0,
#     STOPPED_EARLY; --resume on both nodes then gives the uninterrupted run's losses bit for bit;
#  3. node 2 dies (SIGKILL to every process in its namespace, orted included) mid-run: the job
#     ends on node 1 within BOUND_S, nothing of it left running; --resume on both nodes continues
#     from the last complete checkpoint, bit-identical to the uninterrupted run;
#  4. reshard across the boundary: the 2 x 2 run's step-8 checkpoint resumed on node 1 alone with
#     2 ranks: the loader cursor is remapped (8 -> 16 batches per rank: the same rows per step)
#     and the losses stay within the reshard bounds of tests/dist/zero1.sh.
# Needs root (namespaces), mpirun, python3 with torch + safetensors, KILN_DATA.
source "$(dirname "$0")/lib.sh"
mn_start
BOUND_S=30
steps=12
# 4 ranks x 8 seqs x 64 tokens = 2048 tokens per step, one micro-step (1 rank x 32: the same).
args=("${TINY_ARGS[@]}" train.max_steps=$steps train.device_batch_size=8 train.total_batch_size=2048
      checkpoint.every=4 checkpoint.keep_last=0 eval.every=6)
same_as_a() {  # same_as_a RUN LABEL: RUN's metrics equal the uninterrupted run's bit for bit
  diff <(strip_timing "$H/a/metrics.jsonl") <(strip_timing "$H/$1/metrics.jsonl") >"$tmp/diff" \
    || { head -6 "$tmp/diff"; fail "$2: losses differ from the uninterrupted 4-rank run"; }
  [ "$(grep -c '"loss"' "$H/$1/metrics.jsonl")" = $steps ] || fail "$2: expected $steps loss records"
}

# ---- 1. parity: 4 ranks on 2 nodes = 1 rank with 4x the batch ----------------------------------
# Run A goes through slurm/pretrain_multinode.sbatch itself, run as a plain script with its mpirun
# launcher (KILN_LAUNCHER=mpirun; the hostfile and TCP flags in KILN_LAUNCH_ARGS, -np 4 as Slurm's
# allocation would give): its launch line, environment forwarding (-x) and resume decision.
on 1 env KILN_LAUNCHER=mpirun KILN_ROOT="$root" KILN_RUN_DIR="$D/a" KILN_LAUNCH_ARGS="-np 4 ${MN_MPI_FLAGS[*]}" \
  timeout --signal=KILL 240 bash "$root/slurm/pretrain_multinode.sbatch" "${args[@]}" >"$tmp/a.log" 2>&1 \
  || { tail -30 "$tmp/a.log"; fail "4-rank run (slurm/pretrain_multinode.sbatch, mpirun)"; }
grep -q "^\[slurm\] .* finished" "$tmp/a.log" || fail "slurm/pretrain_multinode.sbatch did not say finished"
grep -q "world 4 (2 on this node, host ${MN_HOSTS[0]})" "$tmp/a.log" || { grep "\[dist\]" "$tmp/a.log"; fail "not 4 ranks, 2 per node"; }
grep -q "2048 tokens per step = 4 ranks x 8 seqs x 64 tokens x 1 accumulation" "$tmp/a.log" || fail "not 4 ranks x 8 seqs"
"$root/pretrain" "${args[@]}" train.device_batch_size=32 checkpoint.every=0 run.dir="$tmp/np1" >"$tmp/np1.log" 2>&1 \
  || { tail -20 "$tmp/np1.log"; fail "1-rank run"; }
"$root/pretrain" "${args[@]}" train.total_batch_size=512 checkpoint.every=0 run.dir="$tmp/wrong" >"$tmp/wrong.log" 2>&1 \
  || { tail -20 "$tmp/wrong.log"; fail "1-rank run with batch B"; }
# tests/dist/parity.sh's bounds (2 ranks, measured there 6e-7 / 2.4e-5) and wrong-setup floors.
LOSS_BOUND=1e-5 WEIGHT_BOUND=3e-4 WRONG_LOSS=1e-2 WRONG_WEIGHT=1e-1 PARITY_N=4
check_parity "$H/a" "$tmp/np1" "$tmp/wrong" $steps "2 nodes"

# ---- 2. SIGTERM to the job: every rank on both nodes ----------------------------------------
launch 4 "$tmp/hostfile" "$tmp/b.log" "${args[@]}" run.dir="$D/b" &
job=$!
wait_steps "$H/b" 3 120
job_ranks "$D/b" | sort -k2 >"$tmp/b.ranks"
[ "$(awk '{print $2 ":" $3}' "$tmp/b.ranks" | tr '\n' ' ')" = "0:1 1:1 2:2 3:2 " ] \
  || { cat "$tmp/b.ranks"; fail "expected ranks 0,1 on node 1 and 2,3 on node 2"; }
kill -TERM $(awk '{print $1}' "$tmp/b.ranks")
set +e; wait $job; rc=$?; set -e
echo "SIGTERM to ranks 0-3 (node 1: 0,1; node 2: 2,3) after step 3; job exit code $rc"
[ "$rc" = 0 ] || { tail -20 "$tmp/b.log"; fail "the stopped job exited $rc, expected 0"; }
[ -e "$H/b/STOPPED_EARLY" ] || fail "no STOPPED_EARLY marker"
s=$(cat "$H/b/STOPPED_EARLY")
ck=$H/b/ckpt/$(printf 'step_%08d' "$s")
[ -e "$ck/DONE" ] || fail "no complete checkpoint at step $s"
for r in 0 1 2 3; do
  [ -e "$ck/optim_rank_0000$r.safetensors" ] || [ -e "$ck/optim_rank_0000$r.pt" ] || fail "rank $r wrote no optimizer state"
done
grep -q "stopped by signal at step $s" "$tmp/b.log" || fail "no 'stopped by signal' line"
"$py" -c "import json,sys; sys.exit(0 if json.load(open('$ck/meta.json'))['stopped_early'] is True else 1)" \
  || fail "$ck/meta.json does not say stopped_early: true"
launch 4 "$tmp/hostfile" "$tmp/b2.log" --resume "$D/b/ckpt" || { tail -20 "$tmp/b2.log"; fail "resume on 2 nodes"; }
grep -q "resumed from .*$(basename "$ck")" "$tmp/b2.log" || fail "did not resume from step $s"
[ ! -e "$H/b/STOPPED_EARLY" ] || fail "the resumed run left STOPPED_EARLY"
same_as_a b "SIGTERM + resume"
echo "PASS sigterm: all 4 ranks stopped at step $s, checkpointed, exit 0; resumed on both nodes bit-identical"

# ---- 3. node 2 dies mid-step -------------------------------------------------------------
launch 4 "$tmp/hostfile" "$tmp/c.log" "${args[@]}" run.dir="$D/c" &
job=$!
wait_steps "$H/c" 6 120
victims=$(node_pids 2 | tr '\n' ' ')
t0=$(now_ms)
kill -KILL $victims
killed_at=$(last_step "$H/c")
wait_job $job $t0 $BOUND_S
tail -4 "$tmp/c.log"
echo "node 2 SIGKILLed (pids $victims) after step $killed_at: the job on node 1 ended with exit code $rc after $(secs $ms) s"
[ "$rc" != 0 ] || fail "the job exited 0 although node 2 died"
[ $ms -lt $(( BOUND_S * 1000 )) ] || fail "the job took $(secs $ms) s to end, bound ${BOUND_S} s"
[ -z "$(job_ranks "$D/c")" ] || { job_ranks "$D/c"; fail "ranks of the dead job are still running"; }
[ -z "$(node_pids 2)" ] || fail "processes left on node 2"
last=$(basename "$(ls -d "$H"/c/ckpt/step_*/DONE | sort | tail -1 | xargs dirname)")
launch 4 "$tmp/hostfile" "$tmp/c2.log" --resume "$D/c/ckpt" || { tail -20 "$tmp/c2.log"; fail "resume on 2 nodes"; }
grep -q "resumed from .*$last" "$tmp/c2.log" || { grep resumed "$tmp/c2.log"; fail "did not resume from $last"; }
same_as_a c "node death + resume"
echo "PASS node death: job ended in $(secs $ms) s (bound $BOUND_S s); resumed from $last on both nodes bit-identical"

# ---- 4. reshard: 2 nodes x 2 ranks -> 1 node x 2 ranks -------------------------------------
mkdir -p "$H/r/ckpt"
cp -r "$H/a/ckpt/step_00000008" "$H/r/ckpt/"
cp "$H/a/metrics.jsonl" "$H/r/"  # the resume keeps steps 1..8 of it and appends 9..12
launch 2 "$tmp/hostfile1" "$tmp/r.log" --resume "$D/r/ckpt" run.dir="$D/r" checkpoint.dir="$D/r/ckpt" \
  || { tail -20 "$tmp/r.log"; fail "resume on 1 node x 2 ranks"; }
grep -q "world 2 (2 on this node, host ${MN_HOSTS[0]})" "$tmp/r.log" || fail "the reshard run was not 2 ranks on node 1"
grep -q "resharded: saved by 4 rank(s), resumed on 2; loader cursor 8 -> 16 batches per rank" "$tmp/r.log" \
  || { grep resharded "$tmp/r.log"; fail "the cursor was not remapped 4 -> 2 ranks"; }
check_close "$H/r" "$H/a" $steps "reshard 2x2 -> 1x2 from step 8 vs the uninterrupted 2x2 run" 1e-5 3e-4
echo "PASS all multinode training checks in $(secs $(( $(now_ms) - t_start ))) s"
