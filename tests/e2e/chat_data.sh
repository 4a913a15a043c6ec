# Sourced by the chat-stage tests (after tiny_data.sh): chat_setup DIR prepares the tiny dataset
# (tiny_data), pretrains a tiny base model for 6 steps into DIR/base, writes chat shards of 240
# GSM8K records and 100 ShareGPT multi-turn chats into DIR/chat/, and sets MID_ARGS / SFT_ARGS
# (configs/tiny_{mid,sft}.yaml with the test's data, seq_len 128). SFT_ARGS start from DIR/mid_a.
# On a shared, oversubscribed CPU, OpenMP threads that spin at barriers slow tiny training steps
# down 20x (measured: 40 s vs 1.8 s per tiny step at load 13 on 2 cores); passive waiting avoids it.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
chat_setup() {
  local dir=$1 root=${KILN_ROOT_DIR:-$root}
  local data=${KILN_DATA:-$root/../shared/data}
  tiny_data "$dir"
  "$root/pretrain" "${TINY_ARGS[@]}" train.max_steps=6 train.device_batch_size=8 train.total_batch_size=1024 \
    eval.every=0 checkpoint.every=0 run.dir="$dir/base" >"$dir/base.log" 2>&1 \
    || { cat "$dir/base.log"; echo "FAIL: base pretraining" >&2; exit 1; }
  head -n 240 "$data/gsm8k/train.jsonl" >"$dir/gsm8k.jsonl"
  python3 -c "import json,sys; json.dump(json.load(open(sys.argv[1]))[:100], open(sys.argv[2], 'w'))" \
    "$data/chat/fastchat/dummy_conversation.json" "$dir/identity.json"
  for src in gsm8k.jsonl identity.json; do
    "$root/prepare" --chat --tokenizer "$dir/tok.json" --output "$dir/chat/${src%%.*}" --val-fraction 0.05 \
      --max-len 129 "$dir/$src" >/dev/null 2>&1 || { echo "FAIL: prepare --chat $src" >&2; exit 1; }
  done
  local common=(data.tokenizer="$dir/tok.json" model.seq_len=128 train.device_batch_size=4
                train.total_batch_size=1024 eval.tokens=2048 eval.sample_every=0 log.every=4)
  MID_ARGS=("$root/configs/tiny_mid.yaml" init.from="$dir/base/ckpt" "${common[@]}"
            "data.train=[{path: $dir/chat/gsm8k/train_*.h5, repeat: 1}, {path: $dir/chat/identity/train_*.h5, repeat: 2}]"
            "data.val=$dir/chat/gsm8k/val_*.h5")
  SFT_ARGS=("$root/configs/tiny_sft.yaml" init.from="$dir/mid_a/ckpt" "${common[@]}"
            "data.train=[{path: $dir/chat/gsm8k/train_*.h5, repeat: 1}, {path: $dir/chat/identity/train_*.h5, repeat: 1}]"
            "data.val=$dir/chat/gsm8k/val_*.h5")
}

# chat_resume_check RANKS STAGE ARGS...: run STAGE (midtrain|sft) uninterrupted into DIR_a and again
# into DIR_b (DIR = $tmp/mid or $tmp/sft), SIGKILL run B (every rank) after a step chosen at random
# past the first checkpoint, --resume it on RANKS ranks, and require bit-identical metrics (losses and
# validation, timing fields removed). ARGS must hold train.max_steps=$steps and checkpoint.every=3.
chat_resume_check() {
  local ranks=$1 stage=$2; shift 2
  local name=${stage/midtrain/mid} run=() pid p kill_at
  local a=$tmp/${name}_a b=$tmp/${name}_b
  [ "$ranks" = 1 ] && run=("$root/$stage") || run=("$root/tests/run_mpi.sh" "$ranks" "$root/$stage")
  "${run[@]}" "$@" run.dir="$a" >"$a.log" 2>&1 || { cat "$a.log"; fail "$stage: uninterrupted run on $ranks rank(s)"; }
  grep -q "\[init\] $stage weights from $tmp/.*step_" "$a.log" || { cat "$a.log"; fail "$stage did not init from its parent"; }
  kill_at=$(( 4 + RANDOM % (steps - 6) ))  # after a checkpoint (every 3), before the end
  "${run[@]}" "$@" run.dir="$b" >"$b.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 30000); do
    [ "$(chat_last_step "$b")" -ge $kill_at ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.01
  done
  if [ "$ranks" = 1 ]; then kill -9 $pid 2>/dev/null || fail "$stage run B ended before the kill at step $kill_at"
  else for r in $(seq 0 $((ranks - 1))); do p=$(rank_pid "$b" $r) || fail "no rank $r"; kill -9 "$p"; done; fi
  wait $pid 2>/dev/null || true
  echo "$stage ($ranks rank(s)): SIGKILLed run B after step $(chat_last_step "$b") (chosen at random: $kill_at)"
  [ -d "$b/ckpt/step_$(printf %08d $steps)" ] && fail "$stage run B finished before the kill"
  "${run[@]}" --resume "$b/ckpt" >"$b.resume.log" 2>&1 || { cat "$b.resume.log"; fail "$stage: resumed run"; }
  grep -q "resumed from" "$b.resume.log" || fail "$stage: did not resume"
  diff <(strip_timing "$a/metrics.jsonl") <(strip_timing "$b/metrics.jsonl") >"$tmp/diff" \
    || { head -20 "$tmp/diff"; fail "$stage: losses differ between the uninterrupted and the resumed run"; }
  [ "$(grep -c '"loss"' "$b/metrics.jsonl")" = "$steps" ] || fail "$stage: expected $steps loss records"
  echo "ok: $stage on $ranks rank(s) resumed after SIGKILL equals the uninterrupted run bit for bit ($steps losses, $(grep -c val_loss "$b/metrics.jsonl") validation records)"
}
# chat_last_step RUN_DIR: the last optimizer step logged in metrics.jsonl (0 if none).
chat_last_step() { grep -o '"step":[0-9]*,"loss"' "$1/metrics.jsonl" 2>/dev/null | tail -1 | grep -o '[0-9]*' || echo 0; }
