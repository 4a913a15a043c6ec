# Sourced by the tests that run the real ./pretrain: tiny_data DIR trains the byte-level
# tokenizer on the first 200 kB of tinyshakespeare and writes train/val shards into DIR, then
# sets TINY_ARGS (configs/tiny.yaml + data overrides); last_step / wait_steps follow a run's
# metrics. Needs the binaries symlinked into the repo root (ROOT) and tinyshakespeare:
# ${KILN_DATA:-ROOT/../shared/data}, else fetched (skip.sh's data_file); skips (exit 77; a failure
# under CI=true) only when it cannot be had.
source "$(dirname "${BASH_SOURCE[0]}")/skip.sh"  # skip, data_file
tiny_data() {
  local dir=$1 root=${KILN_ROOT_DIR:-$root} input
  input=$(data_file tinyshakespeare/input.txt) || exit $?
  [ -x "$root/pretrain" ] || { echo "FAIL: $root/pretrain not built" >&2; exit 1; }
  mkdir -p "$dir"
  head -c 200000 "$input" >"$dir/input.txt"
  "$root/tokenizer" train --vocab-size 265 --output "$dir/tok.json" "$dir/input.txt" >/dev/null \
    || { echo "FAIL: tokenizer train" >&2; exit 1; }
  "$root/prepare" --tokenizer "$dir/tok.json" --output "$dir/shards" --val-fraction 0.1 "$dir/input.txt" \
    >/dev/null 2>&1 || { echo "FAIL: prepare" >&2; exit 1; }
  TINY_ARGS=("$root/configs/tiny.yaml" "data.tokenizer=$dir/tok.json" "data.train=$dir/shards/train_*.h5"
             "data.val=$dir/shards/val_*.h5" eval.tokens=4096 eval.sample_every=0 log.every=10)
}

# tiny_docs DIR: tiny_data's text as DOCUMENTS (data.layout bestfit needs many): the first 200 kB
# of tinyshakespeare split at blank lines (one speech each) into JSONL records, the same byte-level
# tokenizer, shards in DIR/shards; sets DOCS_ARGS (configs/tiny.yaml + data overrides + bestfit).
tiny_docs() {
  local dir=$1 root=${KILN_ROOT_DIR:-$root} input
  input=$(data_file tinyshakespeare/input.txt) || exit $?
  mkdir -p "$dir"
  head -c 200000 "$input" >"$dir/input.txt"
  "${KILN_PYTHON:-python3}" -c '
import json, sys
for speech in open(sys.argv[1]).read().split("\n\n"):
    if speech.strip(): print(json.dumps({"text": speech + "\n"}))' "$dir/input.txt" >"$dir/speeches.jsonl" \
    || { echo "FAIL: speeches.jsonl" >&2; exit 1; }
  "$root/tokenizer" train --vocab-size 265 --output "$dir/tok.json" "$dir/input.txt" >/dev/null \
    || { echo "FAIL: tokenizer train" >&2; exit 1; }
  "$root/prepare" --tokenizer "$dir/tok.json" --output "$dir/shards" --val-fraction 0.1 "$dir/speeches.jsonl" \
    >/dev/null 2>&1 || { echo "FAIL: prepare" >&2; exit 1; }
  DOCS_ARGS=("$root/configs/tiny.yaml" "data.tokenizer=$dir/tok.json" "data.train=$dir/shards/train_*.h5"
             "data.val=$dir/shards/val_*.h5" data.layout=bestfit eval.tokens=4096 eval.sample_every=0 log.every=10)
}

# core_data DIR: what the CORE tests (core.sh, core_training.sh) train and score on: a 512-token
# BPE tokenizer (merges make CORE's spans non-trivial) and shards of the first 200 kB of
# tinyshakespeare in DIR, the test bundle of core_bundle.py (ARC-Easy and tinyshakespeare) in
# DIR/bundle; sets CORE_ARGS (configs/tiny.yaml + data overrides). Skips without ARC data.
core_data() {
  local dir=$1 root=${KILN_ROOT_DIR:-$root} data=${KILN_DATA:-$root/../shared/data} input b
  [ -f "$data/arc/ARC-Easy-test.jsonl" ] || skip "no ARC data under $data"
  input=$(data_file tinyshakespeare/input.txt) || exit $?
  for b in eval pretrain tokenizer prepare; do [ -x "$root/$b" ] || { echo "FAIL: ./$b not built" >&2; exit 1; }; done
  head -c 200000 "$input" >"$dir/input.txt"
  "$root/tokenizer" train --vocab-size 512 --output "$dir/tok.json" "$dir/input.txt" >/dev/null \
    || { echo "FAIL: tokenizer train" >&2; exit 1; }
  "$root/prepare" --tokenizer "$dir/tok.json" --output "$dir/shards" --val-fraction 0.1 "$dir/input.txt" \
    >/dev/null 2>&1 || { echo "FAIL: prepare" >&2; exit 1; }
  "${KILN_PYTHON:-python3}" "$root/tests/e2e/core_bundle.py" "$dir/bundle" "$data/arc/ARC-Easy-test.jsonl" "$input" \
    || { echo "FAIL: core_bundle.py" >&2; exit 1; }
  CORE_ARGS=("$root/configs/tiny.yaml" "data.tokenizer=$dir/tok.json" "data.train=$dir/shards/train_*.h5"
             "data.val=$dir/shards/val_*.h5" eval.sample_every=0 log.every=10)
}

# kill_at_step PID METRICS.JSONL STEP: SIGKILL the run PID once METRICS has logged STEP's loss;
# false when the run ended before that (up to 2 minutes of waiting).
kill_at_step() {
  local pid=$1 metrics=$2 step=$3
  for _ in $(seq 1 12000); do
    grep -q "\"step\":$step,\"loss\"" "$metrics" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  kill -9 "$pid" 2>/dev/null || return 1
  wait "$pid" 2>/dev/null
  return 0
}

# last_step RUN_DIR: the last optimizer step ./pretrain logged in metrics.jsonl (0 if none).
last_step() { grep -o '"step":[0-9]*,"loss"' "$1/metrics.jsonl" 2>/dev/null | tail -1 | grep -o '[0-9]*' || echo 0; }
# wait_steps RUN_DIR N SECONDS: until ./pretrain has logged step N (needs fail).
wait_steps() {
  local deadline=$(( $(date +%s) + $3 ))
  until [ "$(last_step "$1")" -ge "$2" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after $3 s waiting for step $2 in $1"
    sleep 0.02
  done
}

# strip_timing METRICS.JSONL: the records without wall-clock fields (what must match exactly).
strip_timing() { sed -E 's/,"(dt_ms|tok_per_s|mfu)":[^,}]*//g' "$1"; }

# e2e_tmp: the e2e scripts' temporary directory $tmp (removed on exit) and fail MESSAGE.
# (tests/dist/lib.sh makes its own, with rank cleanup hooks.)
e2e_tmp() {
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  fail() { echo "FAIL: $*"; exit 1; }
}
