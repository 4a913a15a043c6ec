#!/usr/bin/env bash
# Fetch and prepare the conversation shards the chat configs read (local copies first, through
# data_tools/fetch.sh), then ./prepare --chat them with the stage's tokenizer.
#   data_tools/chat_data.sh tiny   -> data/tiny_chat/{gsm8k,identity}/ for configs/tiny_{mid,sft}.yaml
#                                     (tokenizer data/tinyshakespeare/tokenizer.json, from ./launch/demo.sh)
#   data_tools/chat_data.sh d20    -> data/chat/{smoltalk,smoltalk_sft,gsm8k,arc_easy,arc_challenge}/ for
#                                     configs/{mid,sft}.yaml (tokenizer data/tokenizer/tokenizer.json)
# Needs ./prepare built (cmake --build build --target prepare). Rerunning replaces the shards.
# Paths are relative to the repo root, or to $KILN_WORK_DIR when set (launch/speedrun.sh's run directory).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "${KILN_WORK_DIR:-$root}"
which=${1:?usage: data_tools/chat_data.sh tiny|d20}
prep() {  # prep TOKENIZER OUT MAXLEN INPUT...: conversations -> chat shards (2% held out for validation)
  local tok=$1 out=$2 max=$3; shift 3
  "$root/prepare" --chat --tokenizer "$tok" --output "$out" --val-fraction 0.02 --max-len "$max" "$@"
}
case "$which" in
  tiny)
    tok=data/tinyshakespeare/tokenizer.json
    [ -f "$tok" ] || { echo "chat_data.sh: $tok not found; run ./launch/demo.sh (or its tokenizer step) first" >&2; exit 1; }
    "$root/data_tools/fetch.sh" gsm8k data/gsm8k
    "$root/data_tools/fetch.sh" fastchat data/fastchat
    # Byte-level tokens: 513 = the tiny chat stages' seq_len 512 + 1; longer conversations are cut.
    prep $tok data/tiny_chat/gsm8k 513 data/gsm8k/train.jsonl
    prep $tok data/tiny_chat/identity 513 data/fastchat/dummy_conversation.json ;;
  d20)
    tok=data/tokenizer/tokenizer.json
    [ -f "$tok" ] || { echo "chat_data.sh: $tok not found; train the d20 tokenizer first (launch/speedrun.sh)" >&2; exit 1; }
    "$root/data_tools/fetch.sh" smoltalk data/smoltalk
    "$root/data_tools/fetch.sh" gsm8k data/gsm8k
    "$root/data_tools/fetch.sh" arc data/arc
    prep $tok data/chat/smoltalk 2048 data/smoltalk/train.jsonl
    prep $tok data/chat/smoltalk_sft 2048 data/smoltalk/test.jsonl
    prep $tok data/chat/gsm8k 2048 data/gsm8k/train.jsonl
    prep $tok data/chat/arc_easy 2048 --format arc data/arc/ARC-Easy-train.jsonl
    prep $tok data/chat/arc_challenge 2048 --format arc data/arc/ARC-Challenge-train.jsonl ;;
  *) echo "chat_data.sh: unknown set '$which' (tiny, d20)" >&2; exit 1 ;;
esac
