#!/usr/bin/env bash
# The data-side promises of issue 11 through the real binaries: ./prepare never leaves a broken
# dataset (a failing run and a SIGKILLed run leave the old shards byte for byte, an interrupted
# swap is refused by ./pretrain), filesystem errors are clean messages, an odd head_dim is a
# config error naming the key, and without ../shared/data the e2e tests fetch their data (KILN_DATA
# pointed at an empty folder; a curl shim stands in for the network, which CI may not have).
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data, TINY_ARGS, skip, data_file
tmp=$(mktemp -d /tmp/kiln_robust_XXXXXX); trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if [ "$2" = 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
sums() { (cd "$1" && sha256sum train_*.h5 val_*.h5 kiln_dataset.json); }

tiny_data "$tmp/d"
S=$tmp/d/shards
[ -f "$S/kiln_dataset.json" ] && [ ! -e "$S/INCOMPLETE" ] && [ ! -e "$S/.prepare-staging" ]
check "./prepare marks its dataset complete (kiln_dataset.json), leaves no staging folder" $?
before=$(sums "$S")

# 1. A run that fails on record 301 of 301: rc 1 naming the line; the old dataset is untouched.
for i in $(seq 300); do echo '{"text": "line '"$i"' of a good file"}'; done >"$tmp/in.jsonl"
echo '{"text": broken' >>"$tmp/in.jsonl"
out=$(./prepare --tokenizer "$tmp/d/tok.json" --output "$S" "$tmp/in.jsonl" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "in.jsonl:301" <<<"$out"; check "failing ./prepare exits 1 naming in.jsonl:301 (rc=$rc)" $?
[ "$(sums "$S")" = "$before" ] && [ ! -e "$S/.prepare-staging" ]
check "failing ./prepare leaves the old shards and manifest byte for byte" $?

# 2. SIGKILL while the new shards are being written: the old dataset still trains.
input=$(data_file tinyshakespeare/input.txt) || exit $?
for i in $(seq 24); do cat "$input"; done >"$tmp/big.txt"
./prepare --tokenizer "$tmp/d/tok.json" --output "$S" --val-fraction 0.1 "$tmp/big.txt" >/dev/null 2>&1 &
pid=$!
for i in $(seq 100); do [ -n "$(ls "$S/.prepare-staging" 2>/dev/null)" ] && break; sleep 0.05; done
staged=$(ls "$S/.prepare-staging" 2>/dev/null | wc -l)
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
[ "$staged" -gt 0 ] && [ "$(sums "$S")" = "$before" ]
check "SIGKILL mid-write ($staged staged file(s)): old shards and manifest byte for byte" $?
out=$(./pretrain "${TINY_ARGS[@]}" train.max_steps=2 run.dir="$tmp/run1" 2>&1); rc=$?
check "./pretrain trains on the dataset a killed ./prepare left (rc=$rc)" $rc

# 3. An interrupted swap (INCOMPLETE present): ./pretrain refuses, naming it.
touch "$S/INCOMPLETE"
out=$(./pretrain "${TINY_ARGS[@]}" train.max_steps=2 run.dir="$tmp/run2" 2>&1); rc=$?
[ $rc != 0 ] && grep -q "INCOMPLETE" <<<"$out" && grep -q "run the same ./prepare command again" <<<"$out"
check "./pretrain refuses a half-swapped dataset, naming INCOMPLETE (rc=$rc)" $?
rm -f "$S/INCOMPLETE"
out=$(./prepare --tokenizer "$tmp/d/tok.json" --output "$S" --val-fraction 0.1 "$tmp/d/input.txt" 2>&1); rc=$?
[ $rc = 0 ] && [ ! -e "$S/.prepare-staging" ] && [ -f "$S/kiln_dataset.json" ]
check "./prepare after a killed run succeeds and clears the staging folder (rc=$rc)" $?

# 4. Filesystem errors are messages, not crashes (std::exception is caught too).
out=$(./prepare --tokenizer "$tmp/d/tok.json" --output /dev/null/x "$tmp/d/input.txt" 2>&1); rc=$?
[ $rc = 1 ] && grep -q '^\[prepare\]' <<<"$out" && ! grep -qi "terminate\|core dumped" <<<"$out"
check "./prepare --output under a file: exit 1 with a [prepare] message (rc=$rc)" $?
mkdir -p "$tmp/adir/tok.json"
out=$(./tokenizer train --vocab-size 265 --output "$tmp/adir/tok.json" "$tmp/d/input.txt" 2>&1); rc=$?
[ $rc = 1 ] && grep -q '^\[tokenizer\]' <<<"$out" && ! grep -qi "terminate\|core dumped" <<<"$out"
check "./tokenizer train --output onto a directory: exit 1 with a [tokenizer] message (rc=$rc)" $?

# 5. An odd head_dim is a config error naming the keys, not a TORCH_CHECK.
out=$(./pretrain configs/tiny.yaml model.width=130 model.n_head=2 --check 2>&1); rc=$?
[ $rc != 0 ] && grep -q "head_dim 65" <<<"$out" && grep -q "model.n_head" <<<"$out" && ! grep -qi "internal error" <<<"$out"
check "odd head_dim: config error naming model.width / model.n_head (rc=$rc)" $?

# 5b. A tokenizer bomb (issue 19): 1.7 KB of merges, each joining the newest token with itself, would
# make every loader build strings of 2^35 bytes. ./tokenizer, and ./sample and ./eval given a
# checkpoint carrying it (its CRC updated, as an attacker would), refuse it naming the file and the
# merge, within a bounded peak RSS and time (under a 3 GB address-space cap, so a regression fails
# with bad_alloc instead of swamping the machine).
python3 - "$tmp/d/tok.json" "$tmp/bomb.json" <<'PY'
import json, sys
tok = json.load(open(sys.argv[1]))
merges = [[97, 97]] + [[256 + k, 256 + k] for k in range(34)]  # token 256 + k: 2^(k+1) bytes
n = 256 + len(merges)
names = sorted(tok["special_tokens"], key=tok["special_tokens"].get)
j = {"format": "kiln.tokenizer", "format_version": 1, "pattern": tok["pattern"], "vocab_size": n + len(names),
     "special_tokens": {s: n + i for i, s in enumerate(names)}, "merges": merges, "token_bytes": [1] * (n + len(names))}
open(sys.argv[2], "w").write(json.dumps(j, separators=(",", ":")))
PY
bounded() { (ulimit -v 3000000; /usr/bin/time -f "peak %M KB, %e s" "$@"); }
bomb_ok() {  # OUTPUT RC WHAT FILE: refused naming FILE and merge 16, peak RSS under 1 GB (libtorch loaded: ~0.5 GB), under 30 s
  local peak secs
  peak=$(sed -nE 's/.*peak ([0-9]+) KB.*/\1/p' <<<"$1" | tail -1); secs=$(sed -nE 's/.*KB, ([0-9.]+) s.*/\1/p' <<<"$1" | tail -1)
  echo "     $3: $(grep -m1 -o 'merge 16 .*limit of [0-9]*' <<<"$1"); peak ${peak:-?} KB, ${secs:-?} s"
  [ "$2" = 1 ] && grep -q "$4: merge 16 = \[271, 271\] makes a token of 131072 bytes" <<<"$1" &&
    ! grep -qi "bad_alloc\|internal error\|terminate" <<<"$1" && [ "${peak:-999999999}" -lt 1000000 ] &&
    python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 30 else 1)" "${secs:-99}"
}
[ "$(wc -c <"$tmp/bomb.json")" -lt 2000 ]; check "the bomb file is under 2 KB ($(wc -c <"$tmp/bomb.json") bytes)" $?
out=$(bounded ./tokenizer info --tokenizer "$tmp/bomb.json" 2>&1); rc=$?
bomb_ok "$out" $rc "./tokenizer info" "bomb.json"; check "./tokenizer info refuses the merge bomb, naming the file and merge (rc=$rc)" $?
bck=$tmp/bomb_ckpt; cp -r "$tmp/run1/ckpt" "$bck"
bstep=$(ls -d "$bck"/step_* | tail -1)
cp "$tmp/bomb.json" "$bstep/tokenizer.json"
python3 - "$bstep" <<'PY'
import json, sys, zlib
d = sys.argv[1]; m = json.load(open(d + "/meta.json"))
m["crc32"]["tokenizer.json"] = zlib.crc32(open(d + "/tokenizer.json", "rb").read())
json.dump(m, open(d + "/meta.json", "w"))
PY
out=$(bounded ./sample --ckpt "$bck" --start "x" --max-new-tokens 4 2>&1); rc=$?
bomb_ok "$out" $rc "./sample" "tokenizer.json"; check "./sample refuses a checkpoint carrying the merge bomb (rc=$rc)" $?
out=$(bounded ./eval --ckpt "$bck" --task bpb 2>&1); rc=$?
bomb_ok "$out" $rc "./eval" "tokenizer.json"; check "./eval refuses a checkpoint carrying the merge bomb (rc=$rc)" $?

# 6. No ../shared/data: tiny_data fetches tinyshakespeare (data_tools/fetch.sh, the curl path).
mkdir -p "$tmp/shim" "$tmp/nodata"
cat >"$tmp/shim/curl" <<SHIM
#!/usr/bin/env bash
# stands in for the network: serves the tinyshakespeare URL from a local copy, fails otherwise
url=""; out=""
while [ \$# -gt 0 ]; do case \$1 in -o) out=\$2; shift 2;; -*) shift;; *) url=\$1; shift;; esac; done
echo "\$url" >>"$tmp/shim/requests"
[ -n "\${SHIM_OFFLINE:-}" ] && exit 6
case \$url in */tinyshakespeare/input.txt) cp "$input" "\$out";; *) exit 22;; esac
SHIM
chmod +x "$tmp/shim/curl"
fetch_run() { KILN_DATA="$tmp/nodata" KILN_TEST_CACHE="$tmp/cache" PATH="$tmp/shim:$PATH" \
  bash -c 'root=$1; source tests/e2e/tiny_data.sh; tiny_data "$2"' _ "$root" "$tmp/f" 2>&1; }
out=$(fetch_run); rc=$?
[ $rc = 0 ] && grep -q "fetching tinyshakespeare" <<<"$out" && grep -q "raw.githubusercontent.com" "$tmp/shim/requests" &&
  cmp -s "$tmp/cache/tinyshakespeare/input.txt" "$input" && [ -f "$tmp/f/shards/kiln_dataset.json" ]
check "without ../shared/data the e2e data is fetched by data_tools/fetch.sh and prepared (rc=$rc)" $?
rm -rf "$tmp/cache"
out=$(SHIM_OFFLINE=1 CI= KILN_FETCH_TRIES=1 fetch_run); rc=$?
[ $rc = 77 ] && grep -q "skipped: .*could not download" <<<"$out"
check "offline without data: skip (77) with the reason (rc=$rc)" $?
out=$(SHIM_OFFLINE=1 CI=true KILN_FETCH_TRIES=1 fetch_run); rc=$?
[ $rc = 1 ] && grep -q "CI=true allows no skips" <<<"$out"
check "offline without data under CI=true: a failure, not a skip (rc=$rc)" $?
exit $fail
