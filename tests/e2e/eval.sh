#!/usr/bin/env bash
# ./eval end to end on a 20-step tiny checkpoint (tests/e2e/tiny_data.sh + ./pretrain):
#  - the scorers through the binary (--oracle): gold answers 100 %, wrong answers 0 % on ARC-Easy,
#    ARC-Challenge, MMLU, GSM8K, and the 164 HumanEval canonical solutions pass in the sandbox;
#  - the near-random model on ARC-Easy and MMLU lands within chance +- 3 sigma, with chance
#    summed per example from its number of choices (an independent count in Python here), and
#    each prediction is the reference model's argmax at the prompt's last position (gpt_ref.py);
#  - --oracle results go to eval/oracle-<gold|wrong>/, never where the model's results go;
#  - mpirun -np 2 gives exactly the counts of one rank (arc-easy) and the same bpb;
#  - --task bpb equals the Trainer's final val bpb for the same rows (metrics.jsonl);
#  - result JSON files, one stdout line per task, a progress line with ETA on stderr.
# Needs ../shared/data (or KILN_DATA) with tinyshakespeare and the task files; else skips (77).
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data, TINY_ARGS
e2e_tmp  # tmp (removed on exit), fail
data=${KILN_DATA:-$root/../shared/data}
[ -f "$data/arc/ARC-Easy-test.jsonl" ] || { echo "skipped: no task data under $data" >&2; exit 77; }
[ -x ./eval ] || fail "./eval not built"
py=${KILN_PYTHON:-python3}
"$py" -c "import torch, safetensors" 2>/dev/null || skip "$py lacks torch/safetensors (the reference model)"

tiny_data "$tmp"
./pretrain "${TINY_ARGS[@]}" train.max_steps=20 eval.every=10 checkpoint.every=0 run.dir="$tmp/run" \
  >"$tmp/pretrain.log" 2>&1 || { cat "$tmp/pretrain.log"; fail "pretrain"; }
ck=$tmp/run/ckpt
ev() { ./eval --ckpt "$ck" --data-dir "$data" "$@" >>"$tmp/out.txt" 2>"$tmp/err.txt" || { cat "$tmp/err.txt"; fail "./eval $*"; }; }
js() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$ck/eval/$1.json" "$2"; }
jo() { js "oracle-$1/$2" "$3"; }  # --oracle results: <ckpt>/eval/oracle-<gold|wrong>/<task>.json

# ---- scorers: gold 100 %, wrong 0 % (HumanEval: all 164 canonical solutions in the sandbox, under
# nanochat's guard and limits) ----
ev --task arc-easy,arc-challenge,mmlu,gsm8k,humaneval --oracle gold --max-examples 164 --jobs 2
# (GSM8K's oracle texts carry numbers after their first "#### " line: a scorer reading another one
# than nanochat's first match fails here.)
for t in arc-easy arc-challenge mmlu gsm8k humaneval; do
  [ "$(jo gold "$t" correct)/$(jo gold "$t" total)" = 164/164 ] || fail "$t gold: $(jo gold "$t" correct)/$(jo gold "$t" total)"
done
echo "gold answers: 164/164 on each task; HumanEval sandbox: $(jo gold humaneval sandbox)"
[ "$(jo gold humaneval sandbox_errors)" = 0 ] || fail "sandbox errors"
grep -q 'humaneval: sandbox errors 0 ' "$tmp/err.txt" || fail "./eval does not report its sandbox errors"
ev --task arc-easy,arc-challenge,mmlu,gsm8k,humaneval --oracle wrong --max-examples 20 --jobs 2
for t in arc-easy arc-challenge mmlu gsm8k humaneval; do
  [ "$(jo wrong "$t" correct)/$(jo wrong "$t" total)" = 0/20 ] || fail "$t wrong: $(jo wrong "$t" correct)/$(jo wrong "$t" total)"
done
ls "$ck"/eval/*.json >/dev/null 2>&1 && fail "--oracle wrote results where the model's go: $(ls "$ck"/eval/*.json)"
[ "$(grep -c '^humaneval ' "$tmp/out.txt")" = 2 ] || { cat "$tmp/out.txt"; fail "one stdout line per task run"; }
grep -q '^humaneval .*correct 164/164' "$tmp/out.txt" || fail "stdout line"
grep -q 'eta' "$tmp/err.txt" || fail "no progress line with ETA on stderr"

# ---- the near-random model: chance +- 3 sigma (chance from each example's number of choices) ----
ev --task arc-easy,mmlu --max-examples 200 --dump-examples "$tmp/mc.jsonl"
one="$(js arc-easy correct)/$(js arc-easy total) $(js mmlu correct)/$(js mmlu total)"
# The logit position: each prediction against tests/reference/gpt_ref.py's forward over the whole
# rendered prompt (its last position), on 400 prompts whose reference letters vary.
"$py" tests/reference/sample_bpb_ref.py mc "$ck/step_00000020" "$tmp/mc.jsonl" \
  || fail "./eval's multiple-choice predictions differ from the reference's last-position argmax"
for t in arc-easy mmlu; do
  python3 - "$ck/eval/$t.json" "$data" "$t" <<'EOF' || fail "$t is not within chance +- 3 sigma"
import json, sys, math
r = json.load(open(sys.argv[1])); data, task = sys.argv[2], sys.argv[3]
if task == "arc-easy":
    n_choices = [len(json.loads(l)["choices"]["label"]) for l in open(data + "/arc/ARC-Easy-test.jsonl") if l.strip()][:200]
else:
    n_choices = [4] * 200
mean = sum(1 / k for k in n_choices); sigma = math.sqrt(sum((1 / k) * (1 - 1 / k) for k in n_choices))
print(f"{task}: {r['correct']}/{r['total']} correct; chance {mean:.1f} +- {sigma:.1f} (3 sigma: {mean - 3*sigma:.1f}..{mean + 3*sigma:.1f})")
assert r["total"] == 200 and abs(r["chance_correct"] - mean) < 1e-6
assert abs(r["correct"] - mean) <= 3 * sigma
EOF
done

# ---- bpb: the Trainer's final validation rows give the Trainer's number ----
ev --task bpb
bpb1=$(js bpb score)
python3 - "$ck/eval/bpb.json" "$tmp/run/metrics.jsonl" <<'EOF' || fail "bpb differs from the Trainer's"
import json, sys
r = json.load(open(sys.argv[1]))
val = [json.loads(l) for l in open(sys.argv[2]) if '"val_bpb"' in l][-1]
print(f"./eval bpb {r['score']:.9f} vs Trainer val_bpb {val['val_bpb']:.9f} at step {val['step']}")
assert abs(r["score"] - val["val_bpb"]) <= 1e-6 * val["val_bpb"]
EOF

# ---- mpirun -np 2: exactly the counts of one rank ----
if [ "$(id -u)" = 0 ] && [ "${CI:-}" != true ] && [ "${KILN_TEST_ALLOW_ROOT:-}" != 1 ]; then
  echo "note: mpirun part not run (root outside CI; set CI=true or KILN_TEST_ALLOW_ROOT=1)"
else
  tests/run_mpi.sh 2 ./eval --ckpt "$ck" --data-dir "$data" --task arc-easy,mmlu --max-examples 200 \
    >"$tmp/mpi.txt" 2>&1 || { cat "$tmp/mpi.txt"; fail "mpirun -np 2 ./eval"; }
  two="$(js arc-easy correct)/$(js arc-easy total) $(js mmlu correct)/$(js mmlu total)"
  [ "$(js arc-easy world)" = 2 ] || fail "the 2-rank result does not say world 2"
  echo "arc-easy, mmlu on 1 rank: $one; on 2 ranks: $two"
  [ "$one" = "$two" ] || fail "2 ranks gave $two, 1 rank $one"
  tests/run_mpi.sh 2 ./eval --ckpt "$ck" --data-dir "$data" --task bpb >"$tmp/mpi.txt" 2>&1 || fail "mpirun bpb"
  python3 -c "import sys; a, b = map(float, sys.argv[1:]); print(f'bpb 1 rank {a!r}, 2 ranks {b!r}'); assert abs(a - b) <= 1e-12 * a" \
    "$bpb1" "$(js bpb score)" || fail "bpb depends on the number of ranks"
fi

# ---- generation on the engine, --task all: every task, ChatCORE, report.md with the loss PNG ----
./eval --ckpt "$ck" --data-dir "$data" --task all --max-examples 4 --max-new-tokens 24 --jobs 2 \
  >"$tmp/all.txt" 2>"$tmp/all.err" || { cat "$tmp/all.err"; fail "./eval --task all"; }
cat "$tmp/all.txt"
for t in bpb arc-easy arc-challenge mmlu gsm8k humaneval chatcore; do
  grep -q "^$t " "$tmp/all.txt" || fail "no stdout line for $t"
  [ -f "$ck/eval/$t.json" ] || fail "no $ck/eval/$t.json"
done
[ "$(js gsm8k total)" = 4 ] && [ "$(js humaneval total)" = 4 ] || fail "generative tasks did not run 4 problems"
[ "$(js humaneval sandbox_errors)" = 0 ] || fail "sandbox errors on generated programs"
[ "$(js gsm8k generated_tokens)" -gt 0 ] || fail "the engine generated nothing for gsm8k"
python3 - "$ck/eval" "$tmp/run" <<'EOF' || fail "ChatCORE or the report card"
import json, sys, zlib, struct
ev, run = sys.argv[1], sys.argv[2]
r = {t: json.load(open(f"{ev}/{t}.json")) for t in ["arc-easy", "arc-challenge", "mmlu", "gsm8k", "humaneval", "chatcore"]}
base = {"arc-easy": .25, "arc-challenge": .25, "mmlu": .25, "gsm8k": 0, "humaneval": 0}
want = sum((r[t]["correct"] / r[t]["total"] - b) / (1 - b) for t, b in base.items()) / 5
assert abs(r["chatcore"]["score"] - want) < 1e-12, (r["chatcore"]["score"], want)
md = open(f"{run}/report.md").read()
for needle in ["# kiln report card", "## pretrain", "| arc-easy |", "| chatcore |", "loss_pretrain.png", "training:"]:
    assert needle in md, needle
png = open(f"{run}/loss_pretrain.png", "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n"
w, h = struct.unpack(">II", png[16:24])
i, raw = 8, b""
while i < len(png):  # chunks: length, type, data, crc (each CRC checked)
    n, = struct.unpack(">I", png[i:i + 4]); typ = png[i + 4:i + 8]; body = png[i + 8:i + 8 + n]
    assert struct.unpack(">I", png[i + 8 + n:i + 12 + n])[0] == zlib.crc32(typ + body), typ
    raw += body if typ == b"IDAT" else b""; i += 12 + n
pix = zlib.decompress(raw)
assert len(pix) == h * (3 * w + 1)
rows = [pix[y * (3 * w + 1) + 1:(y + 1) * (3 * w + 1)] for y in range(h)]  # filter byte 0 first
blue = sum(1 for row in rows for k in range(0, 3 * w, 3) if row[k:k + 3] == bytes([0x1f, 0x77, 0xb4]))
print(f"report.md ok; loss_pretrain.png {w}x{h}, {blue} curve pixel hits; chatcore {want:.4f}")
assert blue > 200
EOF
echo "eval e2e: ok"
