#!/usr/bin/env bash
# Fetch a public corpus into DIR, using a local copy first (../shared/data, or $KILN_DATA) and the
# canonical source otherwise; parquet sources are converted to JSONL (data_tools/parquet_to_jsonl.py)
# because ./tokenizer and ./prepare read text and JSONL. Usage: data_tools/fetch.sh NAME DIR [N]
#   NAME: tinyshakespeare | gsm8k | arc | mmlu | humaneval | smoltalk
#         | climbmix (N shards, default 2; nanochat's pretraining corpus) | fineweb-edu (N shards, default 2; nanochat's former one)
#         | fastchat (ShareGPT-format multi-turn identity chats, for the tiny chat stages)
#         | tasks (all four eval tasks as DIR/{arc,mmlu,gsm8k,humaneval}: ./eval --data-dir DIR)
#         | core (nanochat's CORE bundle: DIR/core.yaml, eval_data/, eval_meta_data.csv: ./eval --bundle DIR)
set -euo pipefail
name=${1:?usage: data_tools/fetch.sh NAME DIR [N]}; dir=${2:?usage: data_tools/fetch.sh NAME DIR [N]}
here=$(cd "$(dirname "$0")/.." && pwd)
local_root=${KILN_DATA:-$here/../shared/data}
py=${PYTHON:-python3}
HF=https://huggingface.co/datasets
mkdir -p "$dir"
download() {  # download URL OUT: retries with backoff, .tmp then rename (never a partial final file)
  local url=$1 out=$2 i
  for i in $(seq "${KILN_FETCH_TRIES:-5}"); do
    curl -fsSL "$url" -o "$out.tmp" && { mv "$out.tmp" "$out"; return 0; }
    echo "[fetch] attempt $i failed for $url" >&2; sleep $((2 ** i))
  done
  rm -f "$out.tmp"; echo "[fetch] giving up on $url" >&2; return 1
}
get() {  # get RELATIVE-PATH URL: copy from the local mirror, else download
  local rel=$1 url=$2 out="$dir/$(basename "$1")"
  [ -s "$out" ] && return 0
  if [ -f "$local_root/$rel" ]; then cp "$local_root/$rel" "$out.tmp" && mv "$out.tmp" "$out"; echo "[fetch] $out (local copy)"
  else download "$url" "$out"; echo "[fetch] $out ($url)"; fi
}
get_parquet() {  # get_parquet URL OUT.jsonl [COLUMNS...]: download, convert, drop the parquet
  local url=$1 out=$2; shift 2
  [ -s "$out" ] && return 0
  download "$url" "$out.parquet"
  "$py" "$here/data_tools/parquet_to_jsonl.py" "$out.parquet" "$out" ${1:+--columns "$@"}
  rm -f "$out.parquet"
}
case "$name" in
  tinyshakespeare)
    get tinyshakespeare/input.txt https://raw.githubusercontent.com/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare/input.txt ;;
  gsm8k)
    for s in train test; do
      get gsm8k/$s.jsonl https://raw.githubusercontent.com/openai/grade-school-math/3101c7d5072418e28b9008a6636bde82a006892c/grade_school_math/data/$s.jsonl
    done ;;
  humaneval)
    get humaneval/HumanEval.jsonl.gz https://raw.githubusercontent.com/openai/human-eval/6d43fb980f9fee3c892a914eda09951f772ad10d/data/HumanEval.jsonl.gz
    [ -s "$dir/HumanEval.jsonl" ] || { gunzip -c "$dir/HumanEval.jsonl.gz" >"$dir/HumanEval.jsonl.tmp" && mv "$dir/HumanEval.jsonl.tmp" "$dir/HumanEval.jsonl"; } ;;
  arc)  # local: HF allenai/ai2_arc splits as JSONL; else the same splits from HF parquet
    for sub in Easy Challenge; do for s in train validation test; do
      if [ -f "$local_root/arc/ARC-$sub-$s.jsonl" ]; then get arc/ARC-$sub-$s.jsonl unused
      else get_parquet "$HF/allenai/ai2_arc/resolve/main/ARC-$sub/$s-00000-of-00001.parquet" "$dir/ARC-$sub-$s.jsonl"; fi
    done; done ;;
  mmlu)  # local: CSV with header, 0-based answers (see shared/data/README.md); else the original tar
    if [ -d "$local_root/mmlu" ]; then
      # .fetched is written last: a cut-off copy is never taken for a complete one.
      [ -f "$dir/.fetched" ] || { cp -r "$local_root/mmlu/." "$dir/" && touch "$dir/.fetched"; }
      echo "[fetch] $dir (local copy)"
    else
      [ -f "$dir/.fetched" ] || { download https://people.eecs.berkeley.edu/~hendrycks/data.tar "$dir/data.tar" &&
        tar -xf "$dir/data.tar" -C "$dir" && rm -f "$dir/data.tar" && touch "$dir/.fetched"; }
      echo "[fetch] $dir (original hendrycks CSVs: no header, letter answers)"
    fi ;;
  climbmix|fineweb-edu)
    # nanochat's pretraining shards (parquet, column "text", ~250M characters each), the last one
    # fetched being validation: ClimbMix-400B shuffled, shard_00000..shard_06542 (nanochat/dataset.py
    # since March 2026), or the FineWeb-Edu sample-100BT shards it used before. KILN_FETCH_JOBS
    # downloads at once (default 4, as nanochat's pool).
    repo=$([ "$name" = climbmix ] && echo karpathy/climbmix-400b-shuffle || echo karpathy/fineweb-edu-100b-shuffle)
    n=${3:-2}
    [ "$name" = climbmix ] && [ "$n" -gt 6543 ] && { echo "[fetch] climbmix has 6543 shards, asked for $n" >&2; exit 1; }
    for ((i = 0; i < n; i++)); do
      f=$(printf 'shard_%05d' "$i")
      [ -s "$dir/$f.jsonl" ] && continue
      while [ "$(jobs -rp | wc -l)" -ge "${KILN_FETCH_JOBS:-4}" ]; do wait -n || exit 1; done
      get_parquet "$HF/$repo/resolve/main/$f.parquet" "$dir/$f.jsonl" text &
    done
    while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || exit 1; done ;;
  smoltalk)  # nanochat's SFT/midtraining chat set: records with a "messages" list (./prepare --chat)
    for s in train test; do
      get_parquet "$HF/HuggingFaceTB/smol-smoltalk/resolve/main/data/$s-00000-of-00001.parquet" "$dir/$s.jsonl" messages
    done ;;
  fastchat)  # lm-sys/FastChat's dummy_conversation.json: 500 ShareGPT records ({"conversations": [{"from", "value"}]})
    get chat/fastchat/dummy_conversation.json https://raw.githubusercontent.com/lm-sys/FastChat/0e6d3e4beaab66f4d3f93db72541a4abab8af28d/data/dummy_conversation.json ;;
  core)  # the DCLM eval bundle, from the URL nanochat's scripts/base_eval.py downloads (a zip of eval_bundle/)
    if [ -f "$dir/core.yaml" ]; then echo "[fetch] $dir (already there)"
    elif [ -f "$local_root/eval_bundle/core.yaml" ]; then
      cp -r "$local_root/eval_bundle/." "$dir/"; echo "[fetch] $dir (local copy)"
    else
      download https://karpathy-public.s3.us-west-2.amazonaws.com/eval_bundle.zip "$dir/eval_bundle.zip"
      rm -rf "$dir/.unzip"
      "$py" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$dir/eval_bundle.zip" "$dir/.unzip"
      cp -r "$dir/.unzip/eval_bundle/." "$dir/" && rm -rf "$dir/.unzip" "$dir/eval_bundle.zip"
      echo "[fetch] $dir (https://karpathy-public.s3.us-west-2.amazonaws.com/eval_bundle.zip)"
    fi ;;
  tasks)  # what ./eval reads, in the layout it expects (its default --data-dir is data/tasks)
    for t in arc mmlu gsm8k humaneval; do "$here/data_tools/fetch.sh" "$t" "$dir/$t"; done ;;
  *) echo "data_tools/fetch.sh: unknown corpus '$name' (tinyshakespeare, gsm8k, arc, mmlu, humaneval, tasks, core, climbmix, fineweb-edu, smoltalk, fastchat)" >&2; exit 1 ;;
esac
