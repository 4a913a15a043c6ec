#!/usr/bin/env bash
# NaN/Inf stop, end to end: a checkpoint whose embedding holds a NaN (checksums rewritten so it
# loads) is resumed; the first step's loss is NaN, so ./pretrain must exit non-zero with a message
# naming the step, write no new checkpoint, and leave every checkpoint file byte for byte in place. Also: --resume
# refuses an override that changes the math. Needs ../shared/data and python3 with torch +
# safetensors (installed by launch/setup.sh); skips (77) without them.
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data, TINY_ARGS
py=${KILN_PYTHON:-python3}
"$py" -c "import torch, safetensors" 2>/dev/null || { echo "skipped: $py lacks torch/safetensors"; exit 77; }
e2e_tmp  # tmp (removed on exit), fail

tiny_data "$tmp"
./pretrain "${TINY_ARGS[@]}" train.max_steps=10 checkpoint.every=5 eval.every=0 run.dir="$tmp/run" \
  >"$tmp/a.log" 2>&1 || { cat "$tmp/a.log"; fail "first run"; }
good="$tmp/run/ckpt/step_00000010"
[ -f "$good/DONE" ] || fail "no step 10 checkpoint"

# Refused: an override that changes the math of the resumed run.
err=$(./pretrain --resume "$tmp/run/ckpt" optim.matrix_lr=0.5 2>&1 >/dev/null); rc=$?
[ $rc != 0 ] && grep -q "would change the math" <<<"$err" || fail "math-changing override on resume (rc=$rc): $err"

# Poison the embedding of the step-5 checkpoint with NaN, keeping it loadable (CRC-32 rewritten).
poison="$tmp/run/ckpt/step_00000005"
"$py" - "$poison" <<'PY' || fail "could not poison the checkpoint"
import json, sys, zlib, torch
from safetensors.torch import load_file, save_file
d = sys.argv[1]
w = load_file(f"{d}/model.safetensors")
w["transformer.wte.weight"][:, 0] = float("nan")  # every token, so the first batch hits it
save_file(w, f"{d}/model.safetensors", metadata={"format": "kiln.model"})
meta = json.load(open(f"{d}/meta.json"))
meta["crc32"]["model.safetensors"] = zlib.crc32(open(f"{d}/model.safetensors", "rb").read())
json.dump(meta, open(f"{d}/meta.json", "w"), indent=2)
PY
rm -rf "$good"   # so that --resume picks the poisoned step 5
# Names and contents: every file's SHA-256 before and after the failed resume.
fingerprint() { (cd "$tmp/run/ckpt" && find . -type f | sort | xargs sha256sum); }
before=$(fingerprint)
err=$(./pretrain --resume "$tmp/run/ckpt" 2>&1 >/dev/null); rc=$?
echo "$err" | tail -2
[ $rc != 0 ] || fail "a NaN loss did not stop the run"
grep -q "step 6: the training loss is nan" <<<"$err" || fail "the message does not name step 6 and the NaN: $err"
[ "$(fingerprint)" = "$before" ] || fail "a checkpoint was written, changed or removed after the NaN: $(ls "$tmp/run/ckpt")"
echo "ok: NaN at step 6 stopped the run with a message; checkpoints untouched; math-changing resume override refused"
