#!/usr/bin/env bash
# The report card over the chat stages, and one bpb definition per stage (issue 19, items 12, 13,
# 16), through the real binaries: a tiny base -> ./midtrain (packed) -> ./sft (padded), trained
# from one directory with relative paths (as ./launch/demo.sh does). Then:
#  - ./eval --task bpb on each chat stage equals the Trainer's final val bpb, and report.md shows
#    that one number for it;
#  - --oracle results go apart (eval/oracle-gold/), give no ChatCORE, and report.md lists them
#    only as scorer self-checks: the summary keeps the model's own scores;
#  - ./eval --task report from another directory, and after moving the runs, keeps all stages;
#  - a parent replaced by an edited copy carrying a forged result, or by another checkpoint, is
#    refused naming the files; a deleted parent is named at the top of the report.
# Needs ../shared/data (or KILN_DATA) with tinyshakespeare, GSM8K, FastChat and ARC; else skips (77).
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
[ -n "${KILN_DATA:-}" ] && KILN_DATA=$(cd "$KILN_DATA" && pwd) && export KILN_DATA
source "$root/tests/e2e/tiny_data.sh"  # tiny_data, TINY_ARGS, skip (absolute: the test changes directory)
source "$root/tests/e2e/chat_data.sh"  # chat_setup, MID_ARGS, SFT_ARGS
e2e_tmp  # tmp (removed on exit), fail
data=${KILN_DATA:-$root/../shared/data}
[ -f "$data/arc/ARC-Easy-test.jsonl" ] || skip "no task data under $data"

mkdir -p "$tmp/t" "$tmp/elsewhere/deeper"
cd "$tmp/t"   # where training runs: every path relative to it (w/tok.json, w/base/ckpt, w/chat/...)
chat_setup w
short=(train.max_steps=4 eval.every=4 checkpoint.every=0)
"$root/midtrain" "${MID_ARGS[@]}" "${short[@]}" run.dir=w/mid_a >mid.log 2>&1 || { cat mid.log; fail "midtrain"; }
"$root/sft" "${SFT_ARGS[@]}" "${short[@]}" run.dir=w/sft >sft.log 2>&1 || { cat sft.log; fail "sft"; }
ev() { "$root/eval" --data-dir "$data" "$@" >>ev.txt 2>ev.err || { cat ev.err; fail "./eval $*"; }; }

# ---- item 16: ./eval --task bpb = the Trainer's final val bpb, for packed and padded stages ----
for st in mid_a sft; do
  ev --ckpt w/$st/ckpt --task bpb
  python3 - w/$st/ckpt/eval/bpb.json w/$st/metrics.jsonl <<'PY' || fail "$st: ./eval bpb is not the Trainer's val bpb"
import json, sys
r = json.load(open(sys.argv[1]))
val = [json.loads(l) for l in open(sys.argv[2]) if '"val_bpb"' in l][-1]
print(f"{r['stage']}: ./eval bpb {r['score']:.9f}, Trainer val_bpb {val['val_bpb']:.9f} (step {val['step']}); {r['definition']}")
assert abs(r["score"] - val["val_bpb"]) <= 1e-6 * val["val_bpb"]
PY
done

# ---- item 13: oracle results kept apart ----
ev --ckpt w/sft/ckpt --task arc-easy --max-examples 16
real=$(python3 -c 'import json; r = json.load(open("w/sft/ckpt/eval/arc-easy.json")); print(r["correct"], r["score"])')
ev --ckpt w/sft/ckpt --task chatcore --max-examples 2 --oracle gold --jobs 2
ev --ckpt w/sft/ckpt --task arc-easy,gsm8k --max-examples 16 --oracle gold
grep -q "^arc-easy .*correct 16/16.*--oracle gold: the scorer's self-check" ev.txt || { cat ev.txt; fail "oracle stdout line"; }
grep -q "^chatcore .*not computed" ev.txt || { cat ev.txt; fail "ChatCORE computed from oracle answers"; }
[ -f w/sft/ckpt/eval/chatcore.json ] && fail "an oracle run wrote eval/chatcore.json"
[ "$(python3 -c 'import json; r = json.load(open("w/sft/ckpt/eval/arc-easy.json")); print(r["correct"], r["score"])')" = "$real" ] \
  || fail "the oracle run replaced the model's arc-easy result"
python3 -c 'import json; r = json.load(open("w/sft/ckpt/eval/oracle-gold/arc-easy.json")); assert (r["oracle"], r["correct"]) == ("gold", 16), r' \
  || fail "eval/oracle-gold/arc-easy.json"

# ---- item 12: the report from another directory keeps every stage; the same after a move ----
check_report() {  # CKPT EXPECTED_STAGES: report from another directory, checked against the results
  (cd "$tmp/elsewhere/deeper" && "$root/eval" --task report --ckpt "$1" >rep.txt 2>rep.err) \
    || { cat "$tmp/elsewhere/deeper/rep.err"; fail "report of $1"; }
  python3 - "$(dirname "$1")/report.md" "$(dirname "$1")" "$2" <<'PY' || fail "report.md of $1"
import json, re, sys
md, run, want = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3].split(",")
stages = re.findall(r"^## (\w+) — ", md, re.M)
assert stages == want, (stages, want)
assert "Lineage incomplete" not in md
head = md.split("\n## ")[1]  # the summary
row = lambda name: [c.strip() for c in re.search(r"^\| " + re.escape(name) + r" \|(.*)\|$", head, re.M).group(1).split("|")]
r = json.load(open(run + "/ckpt/eval/arc-easy.json"))
assert row("arc-easy")[-1] == f"{r['score']:.4f}", (row("arc-easy"), r["score"])  # the model's, not the oracle's 1.0
assert row("chatcore")[-1] == "-", row("chatcore")
val = [json.loads(l) for l in open(run + "/metrics.jsonl") if '"val_bpb"' in l][-1]
assert row("bpb")[-1] == f"{val['val_bpb']:.4f}", (row("bpb"), val)  # one bpb: ./eval's = the Trainer's
assert f"val bpb {val['val_bpb']:.4f}" in md
assert "Scorer self-checks" in md and "| arc-easy (--oracle gold) | 1.0000 | 16 / 16 |" in md
print(f"report.md: stages {stages}; arc-easy {r['score']:.4f} (oracle apart); bpb {val['val_bpb']:.4f} once")
PY
}
check_report "$tmp/t/w/sft/ckpt" pretrain,midtrain,sft
cd "$tmp" && mv t moved && cd moved  # the runs moved together (paths recorded relative to t)
check_report "$tmp/moved/w/sft/ckpt" pretrain,midtrain,sft
cd "$tmp" && mv moved t && cd t

# ---- a substituted parent: refused, naming the files ----
mid=w/mid_a/ckpt/step_00000004
cp -a $mid saved_mid
python3 - $mid/meta.json <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); m["total_steps"] = 400  # a "longer" run, say
json.dump(m, open(sys.argv[1], "w"))
PY
sha=$(sha256sum $mid/meta.json | cut -d' ' -f1)
mkdir -p w/mid_a/ckpt/eval
echo '{"task": "arc-easy", "score": 0.99, "correct": 99, "total": 100, "oracle": "none", "meta_sha256": "'$sha'"}' \
  >w/mid_a/ckpt/eval/arc-easy.json
for variant in edited base; do
  if [ $variant = base ]; then rm -rf $mid && cp -a w/base/ckpt/step_00000006 $mid; fi
  out=$(cd "$tmp/elsewhere" && "$root/eval" --task report --ckpt "$tmp/t/w/sft/ckpt" 2>&1) && fail "report accepted a $variant parent"
  grep -q "lineage check failed: .*w/mid_a/ckpt/step_00000004/meta.json has sha256 .* but .*w/sft/ckpt/step_00000004/meta.json records" <<<"$out" \
    || fail "the refusal does not name the files: $out"
  ! grep -q "0.9900" w/sft/report.md || fail "the forged result reached report.md"
  echo "ok: a $variant parent is refused: $(head -c 200 <<<"$out")..."
done
rm -rf $mid w/mid_a/ckpt/eval/arc-easy.json && mv saved_mid $mid
check_report "$tmp/t/w/sft/ckpt" pretrain,midtrain,sft

# ---- a deleted parent: the report says which, and keeps the stages it has ----
rm -rf $mid
(cd "$tmp/elsewhere" && "$root/eval" --task report --ckpt "$tmp/t/w/sft/ckpt" >/dev/null 2>rep.err) \
  || { cat "$tmp/elsewhere/rep.err"; fail "report without the parent"; }
grep -q "Lineage incomplete:.* w/mid_a/ckpt/step_00000004" w/sft/report.md || fail "the missing parent is not named in report.md"
grep -q "parent stage not found" "$tmp/elsewhere/rep.err" || fail "no warning on stderr"
[ "$(grep -c '^## .* — ' w/sft/report.md)" = 1 ] || fail "stages beyond the missing parent"
echo "ok: a deleted parent is named at the top of report.md"
echo "PASS"
