#!/usr/bin/env bash
# End-to-end check of ./tokenizer and ./prepare, run from the repository root by ctest: the demo's
# exact commands (byte-level tokenizer, nanoGPT split of tinyshakespeare), h5dump shows every
# shard attribute, encode|decode restores a BOM book and a gzip file byte for byte, errors exit 1.
set -uo pipefail
cd "${1:-.}"
data=${KILN_DATA:-$(pwd)/../shared/data}
source tests/e2e/skip.sh  # skip, data_file
for f in tinyshakespeare/input.txt prose/pg11.txt prose/pg74.txt humaneval/HumanEval.jsonl.gz; do
  [ -f "$data/$f" ] || skip "needs $data/$f (../shared/data or KILN_DATA)"
done
fail=0
check() { if [ "$2" = 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
D=$tmp/data/tinyshakespeare
mkdir -p "$D" && cp "$data/tinyshakespeare/input.txt" "$D/input.txt"

out=$(./tokenizer train --vocab-size 265 --output "$D/tokenizer.json" "$D/input.txt" 2>&1); rc=$?
[ $rc = 0 ] && [ -s "$D/tokenizer.json" ]; check "tokenizer train --vocab-size 265" $?
out=$(./tokenizer info --tokenizer "$D/tokenizer.json"); rc=$?
[ $rc = 0 ] && grep -q 'vocab_size 265 (256 bytes + 0 merges' <<<"$out" && grep -q '<|bos|> *256' <<<"$out"
check "tokenizer info: byte-level, bos 256" $?

out=$(./prepare --tokenizer "$D/tokenizer.json" --output "$D" --val-fraction 0.1 "$D/input.txt" 2>&1); rc=$?
[ $rc = 0 ] && [ -f "$D/train_0000.h5" ] && [ -f "$D/val_0000.h5" ] && ! ls "$D"/*.tmp >/dev/null 2>&1
check "prepare writes train_0000.h5 and val_0000.h5 (no .tmp left)" $?
attrs=$(h5dump -A "$D/train_0000.h5" 2>&1); missing=0
for a in format format_version vocab_size bos_id tokenizer_sha256 num_tokens num_docs source created_by; do
  grep -q "ATTRIBUTE \"$a\"" <<<"$attrs" || { echo "  missing attribute $a"; missing=1; }
done
check "h5dump shows every required attribute" $missing
sha=$(sha256sum "$D/tokenizer.json" | cut -d' ' -f1)
grep -q "$sha" <<<"$attrs"; check "tokenizer_sha256 is the sha256sum of tokenizer.json" $?
ntrain=$(h5dump -a /num_tokens "$D/train_0000.h5" | grep -o '(0): [0-9]*' | cut -d' ' -f2)
nval=$(h5dump -a /num_tokens "$D/val_0000.h5" | grep -o '(0): [0-9]*' | cut -d' ' -f2)
[ $((ntrain + nval)) = $(( $(stat -c %s "$D/input.txt") + 2 )) ]; check "train + val tokens = bytes + 2 bos ($ntrain + $nval)" $?

./tokenizer train --vocab-size 400 --output "$tmp/tok400.json" --held-out "$data/prose/pg11.txt" "$D/input.txt" >"$tmp/train.out" 2>&1
grep -q 'bytes/token' "$tmp/train.out"; check "train prints compression on the held-out file" $?
for f in "$data/prose/pg74.txt" "$data/humaneval/HumanEval.jsonl.gz"; do
  ./tokenizer encode --tokenizer "$tmp/tok400.json" "$f" >"$tmp/ids" && ./tokenizer decode --tokenizer "$tmp/tok400.json" "$tmp/ids" >"$tmp/back"
  cmp -s "$f" "$tmp/back"; check "encode | decode restores $(basename "$f")" $?
done

err=$(./tokenizer train --vocab-size 100 --output "$tmp/x.json" "$D/input.txt" 2>&1); rc=$?
[ $rc = 1 ] && grep -q '265' <<<"$err"; check "vocab too small: exit 1 with a hint" $?
err=$(./prepare --tokenizer "$tmp/none.json" --output "$tmp/o" "$D/input.txt" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "$tmp/none.json" <<<"$err"; check "prepare names a missing tokenizer" $?
exit $fail
