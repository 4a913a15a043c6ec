# Sourced by the chat-stage tests (after tiny_data.sh): chat_setup DIR prepares the tiny dataset
# (tiny_data), pretrains a tiny base model for 12 steps into DIR/base, writes chat shards of 240
# GSM8K records and 100 ShareGPT multi-turn chats into DIR/chat/, and sets MID_ARGS / SFT_ARGS
# (configs/tiny_{mid,sft}.yaml with the test's data, seq_len 128). SFT_ARGS start from DIR/mid_a.
chat_setup() {
  local dir=$1 root=${KILN_ROOT_DIR:-$root}
  local data=${KILN_DATA:-$root/../shared/data}
  tiny_data "$dir"
  "$root/pretrain" "${TINY_ARGS[@]}" train.max_steps=12 train.device_batch_size=8 train.total_batch_size=1024 \
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
