#!/usr/bin/env bash
# A checkpoint written before src/ckpt/ (issue 20: the format is unchanged) still works with
# today's binaries: tests/fixtures/ckpt_075f68c holds a format-2 checkpoint made by kiln 075f68c and
# that kiln's own figures for it (make.sh there). This test
#  1. loads it with ./sample: the greedy sample equals the old kiln's byte for byte, and the two
#     seeded ones equal expected_sample.txt (since the one-draw sampler, engine/sampler.cpp, a seed
#     gives another stream from the same distribution: those two lines were made again then);
#  2. resumes it with ./pretrain --resume to step 8: losses, grad norms and validation loss equal the
#     old kiln's resume (9 significant digits, what metrics.jsonl prints);
#  3. resumes it again, saving every 2 steps, and resumes that run from step 6: bit-identical to 2.
# The run's shards are made again from the fixture's 8 kB of text and tokenizer (fixture_data/,
# relative to the working directory, as the checkpoint's config names them). Needs only the build.
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # strip_timing, e2e_tmp
e2e_tmp  # tmp (removed on exit), fail
fx=$root/tests/fixtures/ckpt_075f68c
cd "$tmp" && mkdir fixture_data && cp "$fx/input.txt" "$fx/tok.json" fixture_data/
"$root/prepare" --tokenizer fixture_data/tok.json --output fixture_data --val-fraction 0.2 fixture_data/input.txt \
  >prepare.log 2>&1 || { cat prepare.log; fail "prepare"; }
cp -r "$fx/ckpt" old  # a copy: --resume may repair or set aside files in the directory it is given

# ---- 1. ./sample from the old checkpoint -----------------------------------------------------
{ "$root/sample" --ckpt old --device cpu --start "ROMEO:" --num-samples 1 --max-new-tokens 40 --temperature 0
  "$root/sample" --ckpt old --device cpu --start "ROMEO:" --num-samples 2 --max-new-tokens 40 --temperature 1 --seed 7
} 2>sample.err | grep -av '^number of parameters' >sample.txt || { cat sample.err; fail "./sample of the old checkpoint"; }
cmp -s sample.txt "$fx/expected_sample.txt" || { diff -a sample.txt "$fx/expected_sample.txt"; fail "samples differ from the expected ones"; }
echo "./sample of the 075f68c checkpoint: greedy sample equals 075f68c's, seeded ones the expected ($(wc -c <sample.txt) bytes)"

# ---- 2. resume to the end: the old kiln's figures --------------------------------------------
"$root/pretrain" --resume old run.dir=a checkpoint.dir=a/ckpt >a.log 2>&1 || { tail -20 a.log; fail "resume of the old checkpoint"; }
grep -q "resumed from old/step_00000004 (step 4)" a.log || { grep resumed a.log; fail "did not resume step 4"; }
# Keys that kiln has added to metrics.jsonl since 075f68c (lr/<group>, for TensorBoard) are
# dropped: every figure 075f68c printed must be there, equal.
diff <(strip_timing a/metrics.jsonl | sed -E 's/,"lr\/[a-z_]+":[^,}]*//g') "$fx/expected_resume.jsonl" >diff.txt \
  || { cat diff.txt; fail "the resumed run differs from kiln 075f68c's resume of the same checkpoint"; }
echo "resume of the 075f68c checkpoint, steps 5-8: $(grep -c loss a/metrics.jsonl) records equal 075f68c's"

# ---- 3. resume again, from that run's step 6: bit for bit the straight resume ---------------------
"$root/pretrain" --resume old run.dir=b checkpoint.dir=b/ckpt checkpoint.every=2 >b1.log 2>&1 \
  || { tail -20 b1.log; fail "leg 1 of the split resume"; }
rm -rf b/ckpt/step_00000008  # resume from step 6 (metrics.jsonl drops its later records itself)
"$root/pretrain" --resume b/ckpt/step_00000006 run.dir=b checkpoint.dir=b/ckpt >b2.log 2>&1 || { tail -20 b2.log; fail "leg 2"; }
diff <(strip_timing a/metrics.jsonl) <(strip_timing b/metrics.jsonl) >diff.txt || { cat diff.txt; fail "split resume differs"; }
cmp -s a/ckpt/step_00000008/model.safetensors b/ckpt/step_00000008/model.safetensors || fail "final weights differ"
cmp -s a/ckpt/step_00000008/optim_rank_00000.safetensors b/ckpt/step_00000008/optim_rank_00000.safetensors \
  || fail "final optimizer state differs"
echo "resumed at 4 and again at 6 = resumed at 4 straight to 8: losses, weights and optimizer state bit-identical"
echo PASS
