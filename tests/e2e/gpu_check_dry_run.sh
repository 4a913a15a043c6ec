#!/usr/bin/env bash
# bench/gpu_check.sh --dry-run, so that the one-command GPU check cannot rot while no GPU runs it:
# every step on the CPU at toy sizes with this build (the GPU tests run and skip for want of a GPU,
# the four training rows and the decode table are measured, the JSON and Markdown are written and
# hold every row). Then train.fp8 through the real ./pretrain on the CPU: refused, naming the key.
# Needs KILN_PYTHON with torch and safetensors; ../shared/data for the tiny dataset.
set -uo pipefail
cd "${1:-.}" || exit 1
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data, TINY_ARGS, e2e_tmp
py=${KILN_PYTHON:-python3}
"$py" -c "import torch, safetensors" 2>/dev/null || skip "$py lacks torch/safetensors"
e2e_tmp  # tmp (removed on exit), fail

KILN_PYTHON=$py bench/gpu_check.sh --dry-run --out "$tmp/out" >"$tmp/run.log" 2>&1 ||
  { cat "$tmp/run.log"; fail "bench/gpu_check.sh --dry-run failed"; }
grep -q "tests passed" "$tmp/run.log" || { cat "$tmp/run.log"; fail "no ctest summary line printed"; }
[ -s "$tmp/out/gpu_check.md" ] && [ -s "$tmp/out/gpu_check.log" ] || fail "gpu_check.md / gpu_check.log not written"
grep -q "aten::mm" "$tmp/out/profile_kiln.txt" 2>/dev/null ||
  { cat "$tmp/out/profile_kiln.txt"; fail "profile_kiln.txt (the profiler table of kiln's step) missing or without ATen rows"; }
"$py" - "$tmp/out/gpu_check.json" <<'EOF' || fail "gpu_check.json is incomplete"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["mode"] == "dry-run" and "not GPU figures" in open(sys.argv[1].replace(".json", ".md")).read()
t = r["tests"]
names = {c["name"] for c in t["cases"]}
want = {"Gpu.Fp32ForwardBackwardEqualsCpu", "Gpu.Bf16AutocastWithinTolerance", "Gpu.SdpaRunsOnAFusedKernel",
        "Gpu.NcclCommAllReduceAndReduceOnOneRank", "Gpu.Zero1CudaPathEqualsLocalSteps",
        "Gpu.CheckpointFromGpuResumesOnCpuAndBack", "Gpu.EngineCachedEqualsUncachedOnCuda",
        "Gpu.Fp8ScaledMmAndTrainingTrackBf16"}
assert want <= names, want - names
assert t["ok"] and all(c["status"] == "skipped" for c in t["cases"]), t
assert "tests passed" in t["summary"], t["summary"]
rows = r["train"]["rows"]
assert [x["impl"].split(" ")[0] for x in rows] == ["kiln", "kiln", "PyTorch", "PyTorch"], rows
for x in rows:
    assert "not_measured" not in x, x
    assert x["tok_per_s"] > 0 and x["mfu_pct"] > 0 and len(x["losses"]) == 4, x
# Same initial weights and tokens: kiln's fp32 losses are PyTorch eager's (step 0 exactly ln(512),
# the zero head) and torch.compile's; FP8's stay close (toy model, 4 steps).
k, f, e, c = rows
assert abs(e["losses"][0] - 6.238325) < 1e-4, e["losses"]
assert k["max_abs_loss_diff_vs_eager_first20"] < 1e-3, k
assert c["max_abs_loss_diff_vs_eager_first20"] < 1e-3, c
assert 0 < f["max_abs_loss_diff_vs_eager_first20"] < 0.05, f
assert "not in kiln yet" in r["train"]["nanochat_recipe"]
d = r["decode"]
assert "not_measured" not in d and [x["batch"] for x in d["rows"]] == [1, 16], d
assert all(x["kiln_kv_cache"] > 0 and x["pytorch_kv_cache"] > 0 for x in d["rows"]), d
assert d["kiln_cached_equals_uncached_ids"] == "yes" and d["greedy_ids_equal_pytorch"] == "yes", d
EOF
echo "ok: gpu_check --dry-run wrote every row"

# Without .gpu-deps the real run stops at once and says how to stage it (here: no GPU either way).
mkdir -p "$tmp/nodeps/bench" && cp bench/gpu_check.sh bench/gpu_check_report.py "$tmp/nodeps/bench/"
(cd "$tmp/nodeps" && bash bench/gpu_check.sh --out "$tmp/nodeps/out") >"$tmp/nodeps.log" 2>&1 &&
  fail "gpu_check.sh ran without .gpu-deps"
grep -q "bench/gpu_check.sh --stage" "$tmp/nodeps.log" || { cat "$tmp/nodeps.log"; fail "no staging hint"; }

# train.fp8 on the CPU: ./pretrain refuses with the key, the device and what to do.
tiny_data "$tmp/data"
./pretrain "${TINY_ARGS[@]}" run.dir="$tmp/fp8" run.device=cpu train.fp8=true train.max_steps=1 >"$tmp/fp8.log" 2>&1 &&
  fail "./pretrain trained with train.fp8=true on the CPU"
grep -q "train.fp8 = true needs a CUDA GPU" "$tmp/fp8.log" && grep -q "hint: set train.fp8=false" "$tmp/fp8.log" ||
  { cat "$tmp/fp8.log"; fail "no clear train.fp8 refusal"; }
! grep -qi "terminate called\|core dumped\|Exception raised from" "$tmp/fp8.log" || fail "a stack trace reached the user"
echo "ok: train.fp8 refused on the CPU with a clear message"
