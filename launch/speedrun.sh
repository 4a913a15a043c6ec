#!/usr/bin/env bash
# From nothing to a chat model and its report card in one command (nanochat's runs/speedrun.sh):
#   launch/speedrun.sh [--gpus N] [--depth D] [--run-dir DIR] [--tiny] [--rl]
#                      [--corpus climbmix|fineweb-edu] [--shards N] [--price USD_PER_GPU_HOUR]
# Stages, in order: data (text for the tokenizer; the rest of the shards, the chat and eval data
# in the background while the tokenizer trains), tokenizer (65,536 tokens; --tiny: byte-level)
# with its compression report, base shards, pretraining (configs/d<D>.yaml, d20 by default), CORE
# (when ./eval has it), chat shards, midtraining, SFT, RL (--rl: not in this build), ./eval
# --task all, and DIR/report.md: ./eval's report card plus per-stage and total wall-clock and an
# estimated cost at --price $/GPU-hour (default $KILN_GPU_PRICE or 3.00).
# Everything lives under DIR (default runs/speedrun, --tiny: runs/speedrun_tiny), which is the
# working directory of every stage, so the configs' relative paths (data/..., runs/...) resolve there.
# Rerun-safe: run the same command again after a crash, kill or preemption. A stage with a
# DIR/.speedrun/<stage>.done marker (written atomically after its output was verified) and, for
# a training stage, a final checkpoint with DONE, is skipped; a training stage cut off after a
# checkpoint resumes with --resume; any other cut-off stage runs again (downloads go to a
# temporary name and are renamed, so a half-downloaded file is fetched again). Once a stage
# runs, the stages after it that depend on it run again too. Every skip is printed with its reason.
# TensorBoard: log.tensorboard=true for every stage: tensorboard --logdir DIR (or runs/).
# --tiny: the same stages at CPU scale on tinyshakespeare and the tiny configs (a few minutes on 2 cores).
set -uo pipefail
# The body is one { ... } block, read whole before it runs: editing or pulling this file during a
# run cannot change what the running script does next.
{
root=$(cd "$(dirname "$0")/.." && pwd)
usage() { sed -n '3,4p' "$0" | sed 's/^# *//' >&2; exit 2; }
gpus=1 depth=20 run_dir="" tiny=0 rl=0 corpus=climbmix shards=240 price=${KILN_GPU_PRICE:-3.00}
while [ $# -gt 0 ]; do
  case "$1" in
    --gpus) gpus=${2:-}; shift 2 ;;
    --depth) depth=${2:-}; shift 2 ;;
    --run-dir) run_dir=${2:-}; shift 2 ;;
    --tiny) tiny=1; shift ;;
    --rl) rl=1; shift ;;
    --corpus) corpus=${2:-}; shift 2 ;;
    --shards) shards=${2:-}; shift 2 ;;
    --price) price=${2:-}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "speedrun: unknown argument '$1'" >&2; usage ;;
  esac
done
say() { printf '[speedrun] %s\n' "$*"; }
die() { printf '[speedrun] error: %s\n' "$*" >&2; exit 1; }
[[ "$gpus" =~ ^[1-9][0-9]*$ ]] || die "--gpus must be a positive integer, got '$gpus'"
[[ "$depth" =~ ^[1-9][0-9]*$ ]] || die "--depth must be a positive integer, got '$depth'"
[[ "$shards" =~ ^[1-9][0-9]*$ ]] && [ "$shards" -ge 2 ] || die "--shards must be an integer >= 2 (the last is validation), got '$shards'"
[[ "$price" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--price must be US dollars per GPU-hour (e.g. 3.00), got '$price'"
case "$corpus" in climbmix|fineweb-edu) ;; *) die "--corpus must be climbmix or fineweb-edu, got '$corpus'" ;; esac
if [ "$rl" = 1 ]; then
  echo "[speedrun] error: --rl: the RL stage (./rl) does not exist in this build yet; nothing was started." >&2
  echo "[speedrun] run without --rl (SFT is the last training stage)." >&2
  exit 3
fi
for b in tokenizer prepare pretrain midtrain sft eval; do
  [ -x "$root/$b" ] || die "$root/$b not built: run ./launch/setup.sh (or cmake --build build) first"
done
[ -n "$run_dir" ] || run_dir=$root/runs/speedrun$([ "$tiny" = 1 ] && echo _tiny)
mkdir -p "$run_dir/.speedrun" || die "cannot create $run_dir"
RUN=$(cd "$run_dir" && pwd)
S=$RUN/.speedrun
cd "$RUN"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
fetch() { "$root/data_tools/fetch.sh" "$@"; }

# ---- the plan: configs, data, and per-scale settings -----------------------------------------
if [ "$tiny" = 1 ]; then
  base=tiny mid=tiny_mid sft=tiny_sft tok=data/tinyshakespeare/tokenizer.json
  base_cfg=$root/configs/tiny.yaml mid_cfg=$root/configs/tiny_mid.yaml sft_cfg=$root/configs/tiny_sft.yaml
  # CPU scale: fewer steps than the demo so that the whole pipeline takes about a minute.
  base_over=(train.max_steps=${KILN_TINY_STEPS:-60} checkpoint.every=20 eval.every=20 eval.tokens=8192 eval.sample_every=60
             eval.sample_tokens=64)
  # The chat stages at one micro-step of 4 x 512 tokens (the tiny configs take two or more).
  mid_over=(train.max_steps=20 train.total_batch_size=2048 checkpoint.every=10 eval.every=10 eval.tokens=4096
            eval.sample_every=20 eval.sample_tokens=32)
  sft_over=(train.max_steps=10 train.device_batch_size=4 train.total_batch_size=2048 checkpoint.every=5 eval.every=5
            eval.tokens=4096 eval.sample_every=10 eval.sample_tokens=32)
  eval_over=(--max-examples 8 --max-new-tokens 32)
  price_note="a CPU run: the cost line is for comparison only"
else
  base=d$depth mid=mid sft=sft tok=data/tokenizer/tokenizer.json
  base_cfg=$root/configs/d$depth.yaml base_over=()
  [ -f "$base_cfg" ] || { base_cfg=$root/configs/d20.yaml; base_over=(model.depth=$depth run.name=d$depth); }
  mid_cfg=$root/configs/mid.yaml sft_cfg=$root/configs/sft.yaml
  mid_over=(init.from=runs/$base/ckpt) sft_over=() eval_over=()
  price_note="wall-clock x $gpus GPU(s) x \$$price per GPU-hour"
fi
# ./eval --task core exists only once the CORE benchmark has landed (another change).
has_core=0
"$root/eval" --help 2>&1 | grep -qw core && has_core=1

# ---- stage machinery --------------------------------------------------------------------------
dirty=""   # the first dependent stage that ran in this invocation: later ones must run again
mark_done() { printf '%s\n' "$2" >"$S/$1.done.tmp" && mv -f "$S/$1.done.tmp" "$S/$1.done"; }
# final_ckpt RUNNAME: "" when runs/RUNNAME/ckpt holds its final checkpoint (newest step dir with
# DONE whose step is meta.json's total_steps, not stopped early), else why not.
final_ckpt() {
  local d=runs/$1/ckpt newest
  newest=$(ls -d "$d"/step_* 2>/dev/null | sort | tail -1)
  [ -n "$newest" ] || { echo "no checkpoint in $d"; return; }
  [ -f "$newest/DONE" ] || { echo "$newest has no DONE (its save was cut off)"; return; }
  python3 - "$newest" <<'EOF'
import json, sys, os
m = json.load(open(os.path.join(sys.argv[1], "meta.json")))
step = int(os.path.basename(sys.argv[1]).split("_")[1])
if m.get("stopped_early") or step != m.get("total_steps"):
    print(f"{sys.argv[1]} is step {step} of {m.get('total_steps')}")
EOF
}
# run_stage NAME DEPENDENT(0|1) VERIFY FN: skip when done and verified, else run FN, verify, mark.
run_stage() {
  local name=$1 dependent=$2 verify=$3 fn=$4 why t0 t1
  if [ -f "$S/$name.done" ]; then
    why=$($verify)
    if [ -n "$dirty" ] && [ "$dependent" = 1 ]; then
      say "running $name again: $dirty ran again in this invocation"
      rm -f "$S/$name.done"
    elif [ -z "$why" ]; then
      say "skip $name: done ($(head -1 "$S/$name.done"))"
      return 0
    else
      say "running $name again: its marker exists but $why"
      rm -f "$S/$name.done"
    fi
  fi
  [ "$dependent" = 1 ] && [ -z "$dirty" ] && dirty=$name
  say "start $name"
  t0=$(date +%s.%N)
  $fn || die "stage $name failed (rerun the same command to retry; finished stages are kept)"
  why=$($verify)
  [ -z "$why" ] || die "stage $name ended but its output is not complete: $why"
  t1=$(date +%s.%N)
  python3 -c "print(round($t1 - $t0, 3))" >>"$S/$name.seconds"
  mark_done "$name" "finished $(date -u +%FT%TZ)"
  say "finished $name"
}
# A training stage: resume from its newest complete checkpoint when a cut-off run left one (and no
# stage before it ran again), else start afresh.
train_stage() {  # train_stage BINARY RUNNAME CONFIG OVERRIDES...
  local bin=$1 name=$2 cfg=$3 ck; shift 3
  local args=("$cfg" "run.dir=runs/$name" log.tensorboard=true "$@")
  ck=$(ls -d "runs/$name/ckpt"/step_*/DONE 2>/dev/null | tail -1)
  if [ -n "$ck" ] && [ "$dirty" = "$cur" ]; then
    say "$cur: resuming from $(dirname "$ck") (a run that was cut off)"
    args=(--resume "runs/$name/ckpt")
  else
    rm -rf "runs/$name"
  fi
  if [ "$gpus" -gt 1 ]; then
    KILN_PRETRAIN="$root/$bin" "$root/launch/pretrain.sh" "$gpus" "${args[@]}"
  else
    "$root/$bin" "${args[@]}"
  fi
}
ok() { :; }
file_ok() { for f in "$@"; do [ -s "$f" ] || { echo "$f is missing"; return; }; done; }
shards_ok() { ls "$1"/train_*.h5 >/dev/null 2>&1 && ls "$1"/val_*.h5 >/dev/null 2>&1 || echo "no train/val shards in $1"; }

# ---- the stages -------------------------------------------------------------------------------
if [ "$tiny" = 1 ]; then
  s_text() { fetch tinyshakespeare data/tinyshakespeare; }
  v_text() { file_ok data/tinyshakespeare/input.txt; }
  s_rest() { fetch tasks data/tasks && fetch gsm8k data/gsm8k && fetch fastchat data/fastchat; }
  v_rest() { file_ok data/tasks/gsm8k/test.jsonl data/fastchat/dummy_conversation.json data/gsm8k/train.jsonl; }
  s_tok() {
    tail -c 100000 data/tinyshakespeare/input.txt >data/tinyshakespeare/held_out.txt &&
      "$root/tokenizer" train --vocab-size 265 --output "$tok" --held-out data/tinyshakespeare/held_out.txt \
        data/tinyshakespeare/input.txt | tee "$S/tokenizer_report.txt"
  }
  s_base_data() {
    rm -rf data/tinyshakespeare/*.h5 &&
      "$root/prepare" --tokenizer "$tok" --output data/tinyshakespeare --val-fraction 0.1 data/tinyshakespeare/input.txt
  }
  base_shards=data/tinyshakespeare
  s_chat() { rm -rf data/tiny_chat && KILN_WORK_DIR=$RUN "$root/data_tools/chat_data.sh" tiny; }
  v_chat() { shards_ok data/tiny_chat/gsm8k; shards_ok data/tiny_chat/identity; }
else
  s_text() { fetch "$corpus" "data/$corpus" 8; }
  v_text() { file_ok "data/$corpus/shard_00007.jsonl"; }
  s_rest() {
    fetch "$corpus" "data/$corpus" "$shards" && fetch tasks data/tasks && fetch core data/eval_bundle &&
      for c in smoltalk gsm8k arc; do fetch $c data/$c || return 1; done
  }
  v_rest() { file_ok "data/$corpus/$(printf 'shard_%05d' $((shards - 1))).jsonl" data/tasks/gsm8k/test.jsonl \
               data/smoltalk/test.jsonl data/eval_bundle/core.yaml; }
  s_tok() {
    # nanochat: ~2B characters of the first shards; the compression report on text of shard 7,
    # which the tokenizer does not read.
    mkdir -p data/tokenizer &&
      python3 -c 'import json,sys
out=open(sys.argv[2],"w"); n=0
for l in open(sys.argv[1]):
    t=json.loads(l)["text"]; out.write(t+"\n"); n+=len(t)
    if n>10_000_000: break' "data/$corpus/shard_00007.jsonl" data/tokenizer/held_out.txt &&
      "$root/tokenizer" train --vocab-size 65536 --max-chars 2000000000 --doc-cap 10000 --field text \
        --held-out data/tokenizer/held_out.txt --output "$tok" data/$corpus/shard_0000[0-6].jsonl |
      tee "$S/tokenizer_report.txt"
  }
  s_base_data() {
    # The last shard is validation (nanochat's split): its share of all shards.
    rm -rf data/base && "$root/prepare" --tokenizer "$tok" --output data/base --field text \
      --val-fraction "$(python3 -c "print(1/$shards)")" $(ls data/$corpus/shard_*.jsonl | head -"$shards")
  }
  base_shards=data/base
  s_chat() { rm -rf data/chat && KILN_WORK_DIR=$RUN "$root/data_tools/chat_data.sh" d20; }
  v_chat() { shards_ok data/chat/smoltalk; shards_ok data/chat/smoltalk_sft; }
fi
v_tok() { file_ok "$tok" "$S/tokenizer_report.txt"; }
v_base_data() { shards_ok "$base_shards"; }
base_args=("${base_over[@]}")
[ "$tiny" = 1 ] || base_args=("${base_over[@]}" "data.train=data/base/train_*.h5" "data.val=data/base/val_*.h5")
s_pretrain() { cur=pretrain; train_stage pretrain "$base" "$base_cfg" "${base_args[@]}"; }
v_pretrain() { final_ckpt "$base"; }
s_core() { "$root/eval" --task core --ckpt "runs/$base/ckpt" --bundle data/eval_bundle "${eval_over[@]}"; }
v_core() { file_ok "runs/$base/ckpt/eval/core.json"; }
s_mid() { cur=midtrain; train_stage midtrain "$mid" "$mid_cfg" "init.from=runs/$base/ckpt" "${mid_over[@]}"; }
v_mid() { final_ckpt "$mid"; }
s_sft() { cur=sft; train_stage sft "$sft" "$sft_cfg" "init.from=runs/$mid/ckpt" "${sft_over[@]}"; }
v_sft() { final_ckpt "$sft"; }
s_eval() {
  local launch=()
  [ "$gpus" -gt 1 ] && launch=(mpirun -np "$gpus" --bind-to none $([ "$(id -u)" = 0 ] && echo --allow-run-as-root))
  rm -rf "runs/$sft/ckpt/eval" "runs/$sft/report.md"
  "${launch[@]}" "$root/eval" --task all --ckpt "runs/$sft/ckpt" --data-dir data/tasks "${eval_over[@]}"
}
v_eval() { file_ok "runs/$sft/report.md" "runs/$sft/ckpt/eval/chatcore.json"; }

say "run directory $RUN ($([ "$tiny" = 1 ] && echo "tiny, CPU" || echo "d$depth on $gpus GPU(s), corpus $corpus, $shards shards"))"
run_stage data_text 0 v_text s_text
# The other shards and the chat/eval data come in the background while the tokenizer trains.
( run_stage data_rest 0 v_rest s_rest ) &
bg=$!
run_stage tokenizer 1 v_tok s_tok
run_stage base_data 1 v_base_data s_base_data
run_stage pretrain 1 v_pretrain s_pretrain
if [ "$has_core" = 1 ]; then
  wait "$bg" || die "downloading the rest of the data failed (rerun the same command to retry)"
  # The full run fetches the DCLM bundle with the rest of the data; --tiny has no network to count
  # on, so it runs CORE only where a bundle was put at data/eval_bundle beforehand.
  if [ -f data/eval_bundle/core.yaml ]; then run_stage core 1 v_core s_core
  else say "skip core: no CORE bundle at $RUN/data/eval_bundle (data_tools/fetch.sh core $RUN/data/eval_bundle fetches it)"; fi
else
  say "skip core: this build's ./eval has no 'core' task (./eval --help does not list it)"
fi
wait "$bg" || die "downloading the rest of the data failed (rerun the same command to retry)"
run_stage chat_data 1 v_chat s_chat
run_stage midtrain 1 v_mid s_mid
run_stage sft 1 v_sft s_sft
run_stage eval 1 v_eval s_eval

# ---- the report card: ./eval's report with the speedrun's wall-clock and cost (always rewritten)
python3 "$root/launch/speedrun_report.py" --run-dir "$RUN" --eval-report "runs/$sft/report.md" --gpus "$gpus" \
  --price "$price" --note "$price_note" --stages data_text,data_rest,tokenizer,base_data,pretrain,core,chat_data,midtrain,sft,eval \
  || die "writing the report card failed"
say "report card: $RUN/report.md"
say "TensorBoard: tensorboard --logdir $RUN"
exit 0
}
