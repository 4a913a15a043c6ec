#!/usr/bin/env bash
# nanochat models <-> Hugging Face transformers' NanoChatForCausalLM, through the real binaries, with
# transformers, tokenizers and safetensors as the reference (tests/reference/nanochat_hf_ref.py):
#  1. a tiny kiln model (BPE tokenizer with merges) trained a few steps, ./export-ed: transformers'
#     bits per byte on the Trainer's validation rows equals its val_bpb; ./import nanochat of the
#     export gives bit-identical weights (and exports again to the same model.safetensors);
#  2. the exported tokenizer, in tokenizers and in AutoTokenizer, encodes all of prose/ and 2,000
#     random Unicode strings to kiln's ids and decodes them back;
#  3. apply_chat_template equals kiln's chat rendering (./prepare --chat) id for id, on multi-turn
#     conversations with a system message and python / python_output parts, and with
#     add_generation_prompt;
#  4. a random-init NanoChatForCausalLM at an untuned config (GQA, rms_norm_eps 1e-2, softcap 20,
#     rope_theta 5000, vocab not a multiple of 64) saved by save_pretrained and ./import-ed: greedy
#     ./sample equals generate(), and as init.from the Trainer's step-0 val_bpb equals transformers';
#  5. an SFT'd tiny chat model exported: generate() with the chat template gives kiln's greedy reply,
#     and its import answers one greedy /v1/chat/completions in ./serve and ./chat -p with
#     transformers' reply, and runs in ./eval (arc-easy, 8 examples);
#  6. each bad input to ./import nanochat is refused naming the file and key, no stack trace,
#     nothing written under --out.
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # data_file, skip, e2e_tmp
py=${KILN_PYTHON:-python3}
"$py" -c "import torch, tokenizers, safetensors, h5py; from transformers import NanoChatForCausalLM" 2>/dev/null \
  || skip "$py lacks torch/transformers (with NanoChat)/tokenizers/safetensors/h5py"
e2e_tmp  # tmp (removed on exit), fail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
ref=tests/reference/nanochat_hf_ref.py
data=${KILN_DATA:-$root/../shared/data}
input=$(data_file tinyshakespeare/input.txt) || exit $?
for f in prose/pg11.txt prose/pg1342.txt prose/pg1661.txt gsm8k/train.jsonl chat/fastchat/dummy_conversation.json \
         arc/ARC-Easy-test.jsonl; do
  data_file "$f" >/dev/null || exit $?
done

# Data: a 500-token BPE tokenizer (235 merges; not a multiple of 64, so kiln pads) and its shards.
head -c 200000 "$input" >"$tmp/input.txt"
./tokenizer train --vocab-size 500 --output "$tmp/tok.json" "$tmp/input.txt" >/dev/null || fail "./tokenizer train"
./prepare --tokenizer "$tmp/tok.json" --output "$tmp/shards" --val-fraction 0.1 "$tmp/input.txt" >/dev/null 2>&1 \
  || fail "./prepare"
V=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$tmp/tok.json")
dargs=("data.tokenizer=$tmp/tok.json" "data.train=$tmp/shards/train_*.h5" "data.val=$tmp/shards/val_*.h5")

# 1. Train 6 steps (validation at step 6: 8 batches of 8 x 64 tokens), export, bpb in transformers.
./pretrain configs/tiny.yaml "${dargs[@]}" train.max_steps=6 train.device_batch_size=8 train.total_batch_size=1024 \
  eval.every=6 eval.tokens=4096 eval.sample_every=0 checkpoint.every=0 log.every=2 run.dir="$tmp/base" \
  >"$tmp/base.log" 2>&1 || { cat "$tmp/base.log"; fail "pretraining"; }
kiln_bpb=$(grep '"step":6,"val_loss"' "$tmp/base/metrics.jsonl" | sed -E 's/.*"val_bpb":([^,}]*).*/\1/')
[ -n "$kiln_bpb" ] || fail "no validation record at step 6"
./export --ckpt "$tmp/base/ckpt" --out "$tmp/hf_base" >"$tmp/export.log" 2>&1 || { cat "$tmp/export.log"; fail "./export"; }
for f in config.json model.safetensors tokenizer.json tokenizer_config.json generation_config.json; do
  [ -s "$tmp/hf_base/$f" ] || fail "./export wrote no $f"
done
# kiln's RMSNorm epsilon is F.rms_norm's default, float32's machine epsilon: config.json says so.
"$py" -c "import json, sys, torch; sys.exit(0 if json.load(open(sys.argv[1]))['rms_norm_eps'] == torch.finfo(torch.float32).eps else 1)" \
  "$tmp/hf_base/config.json" || fail "config.json: rms_norm_eps is not float32's epsilon"
./import nanochat --from "$tmp/hf_base" --out "$tmp/rt" >"$tmp/import.log" 2>&1 || { cat "$tmp/import.log"; fail "./import nanochat (export)"; }
./export --ckpt "$tmp/rt" --out "$tmp/hf_rt" >/dev/null 2>&1 || fail "./export of the import"
cmp -s "$tmp/hf_base/model.safetensors" "$tmp/hf_rt/model.safetensors" || fail "export -> import -> export changed model.safetensors"
cmp -s "$tmp/base/ckpt/step_00000006/tokenizer.json" "$tmp/rt/step_00000000/tokenizer.json" \
  || fail "export -> import changed the kiln tokenizer file"
"$py" $ref bpb "$tmp/hf_base" "$tmp/tok.json" "$tmp/shards/val_0000.h5" 8 64 8 + sameweights "$tmp/base/ckpt" "$tmp/rt" "$V" \
  2>"$tmp/ref1.err" || { cat "$tmp/ref1.err"; fail "transformers on the export / export -> import weights"; }
ref_bpb=$(sed -n 's/^bpb //p' "$tmp/ref1.err")
echo "1. val bpb at step 6: kiln $kiln_bpb, transformers on the export $ref_bpb; $(grep sameweights "$tmp/ref1.err")"
"$py" -c "import sys; a, b = float('$kiln_bpb'), float('$ref_bpb'); print('   relative difference %.2e (bound 1e-5)' % abs(a / b - 1)); sys.exit(0 if abs(a - b) <= 1e-5 * b else 1)" \
  || fail "the exported model's bpb in transformers differs from kiln's val_bpb"

# 2. The tokenizer on prose/ and 2,000 random Unicode strings.
mkdir -p "$tmp/ids"
"$py" $ref randtext 2000 11 "$tmp/random.txt" || fail "random strings"
files=("$data/prose/pg11.txt" "$data/prose/pg1342.txt" "$data/prose/pg1661.txt" "$tmp/random.txt")
for i in "${!files[@]}"; do
  ./tokenizer encode --tokenizer "$tmp/tok.json" "${files[$i]}" >"$tmp/ids/$i.ids" || fail "./tokenizer encode ${files[$i]}"
done
"$py" $ref tokenizer "$tmp/hf_base" "$tmp/ids" "${files[@]}" 2>"$tmp/ref2.err" || { cat "$tmp/ref2.err"; fail "tokenizer"; }
echo "2. $(cat "$tmp/ref2.err")"

# 3. The chat template against ./prepare --chat's rendering.
"$py" - "$data/chat/fastchat/dummy_conversation.json" "$tmp/convs.jsonl" <<'PY' || fail "conversations"
import json, sys
role = {"human": "user", "gpt": "assistant"}
out = [{"messages": [{"role": role[t["from"]], "content": t["value"]} for t in r["conversations"]]}
       for r in json.load(open(sys.argv[1]))[:30]]
py = lambda t: {"type": "python", "text": t}
res = lambda t: {"type": "python_output", "text": t}
txt = lambda t: {"type": "text", "text": t}
out += [
    {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi there"},
                  {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4"}]},
    {"messages": [{"role": "user", "content": "What is 12*7, then plus 5?"},
                  {"role": "assistant", "content": [txt("First "), py("12*7"), res("84"), txt(", then "), py("84+5"),
                                                    res("89"), txt(". The answer is 89.")]}]},
    {"messages": [{"role": "system", "content": "Use the calculator.\nAlways."}, {"role": "user", "content": " spaces  \n\n"},
                  {"role": "assistant", "content": [py("1/3"), res("0.333")]}, {"role": "user", "content": "déjà vu — ok?"},
                  {"role": "assistant", "content": "Oui: 100%!\n"}]},
]
with open(sys.argv[2], "w") as f:
    for r in out:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
PY
./prepare --chat --tokenizer "$tmp/tok.json" --output "$tmp/convs" --val-fraction 0 --max-len 0 "$tmp/convs.jsonl" \
  >/dev/null 2>&1 || fail "./prepare --chat"
"$py" $ref chat "$tmp/hf_base" "$tmp/convs.jsonl" "$tmp/convs/train_0000.h5" 2>"$tmp/ref3.err" \
  || { cat "$tmp/ref3.err"; fail "apply_chat_template differs from kiln's rendering"; }
echo "3. $(cat "$tmp/ref3.err")"

# 4. A random-init NanoChatForCausalLM (transformers' save_pretrained) imported: greedy ./sample and
# the Trainer's step-0 validation (init.from, shape adopted from the import) equal transformers'.
prompt="ROMEO: Is the day so young?"
"$py" $ref make "$tmp/hfr" "$tmp/hf_base" 5 + greedy "$tmp/hfr" "$tmp/tok.json" "$prompt" 40 "$tmp/hfr_greedy.txt" \
  + bpb "$tmp/hfr" "$tmp/tok.json" "$tmp/shards/val_0000.h5" 8 64 8 2>"$tmp/ref4.err" || { cat "$tmp/ref4.err"; fail "reference model"; }
./import nanochat --from "$tmp/hfr" --out "$tmp/ckr" >"$tmp/importr.log" 2>&1 || { cat "$tmp/importr.log"; fail "./import nanochat (save_pretrained)"; }
text() { "$py" -c "import sys; s = open(sys.argv[1], 'rb').read(); s = s[s.index(b'\n') + 1:]; sys.stdout.buffer.write(s[:s.rindex(b'\n---------------\n')])" "$1"; }
./sample --ckpt "$tmp/ckr" --start "$prompt" --top-k 1 --num-samples 1 --max-new-tokens 40 >"$tmp/greedy.out" 2>"$tmp/greedy.err" \
  || { cat "$tmp/greedy.err"; fail "./sample on the import"; }
text "$tmp/greedy.out" >"$tmp/kiln_greedy.txt"
echo "4. kiln greedy:         $(head -c 200 "$tmp/kiln_greedy.txt" | tr '\n' '|')"
echo "   transformers greedy: $(head -c 200 "$tmp/hfr_greedy.txt" | tr '\n' '|')  ($(grep -o 'greedy: [0-9]* new ids' "$tmp/ref4.err"))"
cmp -s "$tmp/kiln_greedy.txt" "$tmp/hfr_greedy.txt" || fail "./sample --top-k 1 on the import differs from transformers' greedy generate"
cat >"$tmp/ft.yaml" <<EOF
run: {seed: 1, device: cpu}
train: {max_steps: 1, device_batch_size: 8, total_batch_size: 512}
eval: {every: 1, tokens: 4096, sample_every: 0}
checkpoint: {every: 0}
log: {every: 1}
EOF
./pretrain "$tmp/ft.yaml" "${dargs[@]}" init.from="$tmp/ckr" model.seq_len=64 run.dir="$tmp/ft" >"$tmp/ft.log" 2>&1 \
  || { cat "$tmp/ft.log"; fail "./pretrain with init.from the import"; }
kiln_bpb0=$(grep '"step":0,"val_loss"' "$tmp/ft/metrics.jsonl" | sed -E 's/.*"val_bpb":([^,}]*).*/\1/')
ref_bpb0=$(sed -n 's/^bpb //p' "$tmp/ref4.err")
echo "   init.from the import: step-0 val bpb kiln $kiln_bpb0, transformers $ref_bpb0"
"$py" -c "import sys; a, b = float('$kiln_bpb0'), float('$ref_bpb0'); print('   relative difference %.2e (bound 1e-5)' % abs(a / b - 1)); sys.exit(0 if abs(a - b) <= 1e-5 * b else 1)" \
  || fail "the imported model's val bpb in kiln differs from transformers'"

# 5. SFT a tiny chat model (GSM8K, 4 steps), export: transformers' generate with the chat template
# gives ./sample --chat's greedy reply; its import answers in ./serve as transformers does.
head -n 120 "$data/gsm8k/train.jsonl" >"$tmp/gsm8k.jsonl"
./prepare --chat --tokenizer "$tmp/tok.json" --output "$tmp/chat" --val-fraction 0.05 --max-len 129 "$tmp/gsm8k.jsonl" \
  >/dev/null 2>&1 || fail "./prepare --chat gsm8k"
./sft configs/tiny_sft.yaml init.from="$tmp/base/ckpt" "data.tokenizer=$tmp/tok.json" "data.train=$tmp/chat/train_*.h5" \
  "data.val=$tmp/chat/val_*.h5" model.seq_len=128 train.max_steps=4 train.device_batch_size=4 train.total_batch_size=1024 \
  eval.every=0 eval.sample_every=0 checkpoint.every=0 log.every=2 run.dir="$tmp/sft" >"$tmp/sft.log" 2>&1 \
  || { cat "$tmp/sft.log"; fail "./sft"; }
./export --ckpt "$tmp/sft/ckpt" --out "$tmp/hf_sft" >/dev/null 2>&1 || fail "./export of the SFT model"
"$py" -c "import json,sys; g = json.load(open(sys.argv[1])); t = json.load(open(sys.argv[2])); sys.exit(0 if g['eos_token_id'][0] == t['special_tokens']['<|assistant_end|>'] else 1)" \
  "$tmp/hf_sft/generation_config.json" "$tmp/tok.json" || fail "generation_config.json: eos is not <|assistant_end|> for the chat model"
q="What is 3 plus 4?"
./sample --ckpt "$tmp/sft/ckpt" --chat --start "$q" --top-k 1 --num-samples 1 --max-new-tokens 30 >"$tmp/chat.out" 2>"$tmp/chat.err" \
  || { cat "$tmp/chat.err"; fail "./sample --chat"; }
text "$tmp/chat.out" >"$tmp/kiln_chat.txt"
./import nanochat --from "$tmp/hf_sft" --out "$tmp/ck_sft" >/dev/null 2>&1 || fail "./import nanochat (SFT export)"
"$py" $ref chatgreedy "$tmp/hf_sft" "$tmp/tok.json" "$q" 30 "$tmp/hf_chat.txt" + serveref "$tmp/hf_sft" "$q" 30 "$tmp/hf_serve.txt" \
  2>"$tmp/ref5.err" || { cat "$tmp/ref5.err"; fail "transformers on the SFT export"; }
echo "5. kiln chat greedy:         $(head -c 200 "$tmp/kiln_chat.txt" | tr '\n' '|')"
echo "   transformers chat greedy: $(head -c 200 "$tmp/hf_chat.txt" | tr '\n' '|')"
cmp -s "$tmp/kiln_chat.txt" "$tmp/hf_chat.txt" || fail "transformers' generate with the chat template differs from kiln's greedy reply"
source tests/e2e/serve_lib.sh  # start_server, stop_servers
trap serve_cleanup EXIT
ckpt=$tmp/ck_sft
start_server "$tmp/serve.log"
"$py" - "$url" "$q" "$tmp/hf_serve.txt" <<'PY' || fail "./serve on the imported chat model"
import json, sys, urllib.request
url, q, want = sys.argv[1], sys.argv[2], open(sys.argv[3], encoding="utf-8").read()
req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(
    {"messages": [{"role": "user", "content": q}], "max_tokens": 30, "temperature": 0}).encode(), {"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=60) as r:
    got = json.load(r)["choices"][0]["message"]["content"]
print("   ./serve reply:        %r\n   transformers' reply:  %r" % (got[:120], want[:120]))
assert got == want, "served reply differs from transformers'"
PY
stop_servers || fail "the server did not stop on SIGTERM"
# ./chat -p (greedy) gives the same reply; ./eval runs a task on the import.
./chat --ckpt "$tmp/ck_sft" -p "$q" -t 0 --max-tokens 30 >"$tmp/chat_p.out" 2>"$tmp/chat_p.err" \
  || { cat "$tmp/chat_p.err"; fail "./chat -p on the import"; }
[ "$(cat "$tmp/chat_p.out")" = "$(cat "$tmp/hf_serve.txt")" ] || fail "./chat -p differs from transformers: $(cat "$tmp/chat_p.out")"
echo "   ./chat -p reply equals transformers'"
./eval --task arc-easy --ckpt "$tmp/ck_sft" --data-dir "$data" --max-examples 8 >"$tmp/eval.out" 2>"$tmp/eval.err" \
  || { cat "$tmp/eval.err"; fail "./eval on the import"; }
grep -q "arc-easy" "$tmp/eval.out" || fail "./eval printed no arc-easy result: $(cat "$tmp/eval.out")"
echo "   ./eval on the import: $(grep -m1 arc-easy "$tmp/eval.out")"

# 6. Refusals: each names the file and the key, exits non-zero, no stack trace, nothing under --out.
"$py" - "$tmp/hfr" "$tmp/bad" <<'PY' || fail "making the bad directories"
import json, os, shutil, sys
from safetensors.torch import load_file, save_file
src, bad = sys.argv[1], sys.argv[2]
def variant(name, cfg=None, tensors=None, tok=None):
    d = os.path.join(bad, name)
    shutil.copytree(src, d)
    if cfg:
        c = json.load(open(os.path.join(d, "config.json")))
        cfg(c)
        json.dump(c, open(os.path.join(d, "config.json"), "w"))
    if tensors:
        t = load_file(os.path.join(d, "model.safetensors"))
        tensors(t)
        save_file(t, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    if tok:
        j = json.load(open(os.path.join(d, "tokenizer.json")))
        tok(j)
        json.dump(j, open(os.path.join(d, "tokenizer.json"), "w"))
import torch
variant("missing_tensor", tensors=lambda t: t.pop("model.layers.1.mlp.fc1.weight"))
variant("wrong_shape", tensors=lambda t: t.update({"model.layers.0.self_attn.k_proj.weight": torch.zeros(48, 96)}))
variant("model_type", cfg=lambda c: c.update(model_type="llama"))
variant("heads", cfg=lambda c: c.update(num_attention_heads=5))
variant("kv_heads", cfg=lambda c: c.update(num_key_value_heads=4))
def drop_special(j):
    j["added_tokens"] = [a for a in j["added_tokens"] if a["content"] != "<|output_end|>"]
    j["model"]["vocab"].pop("<|output_end|>", None)
variant("specials", tok=drop_special)
variant("softcap", cfg=lambda c: c.update(final_logit_softcapping=0.0))
variant("norm_eps", cfg=lambda c: c.update(rms_norm_eps=0.0))
variant("act", cfg=lambda c: c.update(hidden_act="gelu"))
PY
refuse() {  # refuse NAME FILE KEY: ./import nanochat of bad/NAME fails naming FILE and KEY
  local out rc
  out=$(./import nanochat --from "$tmp/bad/$1" --out "$tmp/bad_out_$1" 2>&1); rc=$?
  [ $rc -ne 0 ] || fail "$1: ./import nanochat accepted it"
  grep -qF "$tmp/bad/$1/$2" <<<"$out" || fail "$1: the message names no $2: $out"
  grep -qF -- "$3" <<<"$out" || fail "$1: the message names no '$3': $out"
  grep -qE "terminate called|Aborted|Traceback|core dumped|#[0-9]+ +0x" <<<"$out" && fail "$1: a stack trace: $out"
  [ -e "$tmp/bad_out_$1" ] && fail "$1: something was written under --out"
  echo "   $1 (exit $rc): $(head -1 <<<"$out" | cut -c1-220)"
}
echo "6. refusals:"
refuse missing_tensor model.safetensors "model.layers.1.mlp.fc1.weight"
refuse wrong_shape model.safetensors "model.layers.0.self_attn.k_proj.weight"
refuse model_type config.json "model_type"
refuse heads config.json "num_attention_heads"
refuse kv_heads config.json "num_key_value_heads"
refuse specials tokenizer.json "<|output_end|>"
refuse softcap config.json "final_logit_softcapping"
refuse norm_eps config.json "rms_norm_eps"
refuse act config.json "hidden_act"
echo "ok: export/import round trip, bpb, tokenizer, chat template, greedy, init.from, SFT chat, serve, refusals"
