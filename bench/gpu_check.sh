#!/usr/bin/env bash
# One command that proves kiln on one CUDA GPU and measures it beside PyTorch (issue 29), bounded
# to about 10 minutes on one H200 with 16 cores:
#   1. unpack the offline C++ dependencies (.gpu-deps, staged on the dev machine: --stage) and build
#      kiln (ccache, 16 jobs) within GPU_CHECK_BUILD_S seconds (300), else stop saying so;
#   2. the GPU tests (ctest -R '^Gpu\.|Cuda'): every one must run and pass, a skip is a failure;
#   3. training: d20 (GPU_CHECK_DEPTH) at batch 32 x 2048, 20 timed steps on synthetic tokens from
#      the same initial weights: kiln bf16, kiln FP8 (train.fp8), PyTorch eager bf16 and
#      torch.compile bf16: tok/s, MFU against 989 TFLOP/s (dense bf16), peak memory, loss curves;
#   4. decode: tok/s at batch 1 and 16, kiln's engine against PyTorch with a KV cache (fp32 both);
#   4b. the profiler's table of kiln's training step (GPU kernels by time) into $OUT/profile_kiln.txt;
#   5. every figure into $OUT/gpu_check.json and $OUT/gpu_check.md ($OUT unset: runs/gpu_check),
#      the tables and the ctest summary line on stdout, the whole log in $OUT/gpu_check.log.
# --dry-run runs the same steps, scripts and report on the CPU at toy sizes with the existing build
# (no unpack, no build; torch.compile with the aot_eager backend): CI runs it (e2e.gpu_check_dry_run).
# Usage: bench/gpu_check.sh [--dry-run] [--out DIR]      (on the GPU machine, repository root)
#        bench/gpu_check.sh --stage                      (on the dev machine, once: fills .gpu-deps)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
MODE=gpu
OUT_DIR=${OUT:-$ROOT/runs/gpu_check}
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) MODE=dry-run ;;
    --out) OUT_DIR=$2; shift ;;
    --stage) MODE=stage ;;
    *) echo "usage: bench/gpu_check.sh [--dry-run] [--out DIR] | --stage" >&2; exit 2 ;;
  esac
  shift
done

# The packages the build needs beyond what the GPU image has (CUDA, torch, cmake, ninja, python3):
# stage-deps.sh's own set (yaml-cpp, HDF5, OpenMPI, GoogleTest, PCRE2) plus these. libssl-dev,
# zlib1g-dev and libbrotli-dev are on its exclude list (headers a static link would need):
# cpp-httplib's pkg-config file requires them, so they are kept.
DEPS_EXTRA="nlohmann-json3-dev libcli11-dev libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev ccache"
DEPS_KEEP="libssl-dev zlib1g-dev libbrotli-dev"
STAGER=${GPU_DEPS_STAGER:-../shared/gpu/stage-deps.sh}
STAGE_CMD="GPU_DEPS_KEEP=\"$DEPS_KEEP\" bash $STAGER .gpu-deps $DEPS_EXTRA"
if [ "$MODE" = stage ]; then
  [ -f "$STAGER" ] || { echo "gpu_check: no $STAGER (set GPU_DEPS_STAGER to stage-deps.sh)" >&2; exit 1; }
  echo "+ $STAGE_CMD"
  GPU_DEPS_KEEP="$DEPS_KEEP" bash "$STAGER" .gpu-deps $DEPS_EXTRA
  exit $?
fi

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
LOG=$OUT_DIR/gpu_check.log
: >"$LOG"
W=$(mktemp -d)  # work files (weights of d20 are 2.2 GB: never under $OUT, which travels back)
trap 'rm -rf "$W"' EXIT
# Every step's limit is cut to what is left of the budget; a row that does not fit says so. 570 s
# leaves room inside the device tool's 600 s per command (and time for a rerun in 15 minutes:
# on the same warm machine ninja and ccache make the rebuild seconds).
BUDGET=${GPU_CHECK_BUDGET_S:-570}
say() { echo "[gpu_check $(printf '%4d' $SECONDS)s] $*" | tee -a "$LOG"; }
die() { say "STOP: $*"; python3 bench/gpu_check_report.py "$W" "$OUT_DIR" "$MODE" >>"$LOG" 2>&1; exit 1; }
left() { echo $((BUDGET - SECONDS)); }
# run_step NAME SECONDS CMD...: CMD's output into $W/NAME.txt (and the log), bounded in time.
run_step() {
  local name=$1 limit=$2
  shift 2
  [ "$limit" -gt "$(left)" ] && limit=$(left)
  if [ "$limit" -lt 5 ]; then
    echo "not measured: the ${BUDGET}s budget was spent" >"$W/$name.txt"
    say "$name: skipped, out of time"
    return 1
  fi
  say "$name: $* (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" >"$W/$name.txt" 2>"$W/$name.err"
  local rc=$?
  cat "$W/$name.txt" "$W/$name.err" >>"$LOG"
  if [ $rc -ne 0 ]; then
    { [ $rc -eq 124 ] && echo "not measured: exceeded ${limit}s"; echo "failed (exit $rc): $(tail -c 600 "$W/$name.err" | tr '\n' ' ')"; } >>"$W/$name.txt"
    say "$name: FAILED (exit $rc), see $LOG"
    return 1
  fi
}

PY=${KILN_PYTHON:-python3}
if [ "$MODE" = dry-run ]; then
  BUILD=${KILN_BUILD_DIR:-$ROOT/build}
  DEV=cpu DTYPE=fp32 THREADS=1 COMPILE_BACKEND=aot_eager
  # Toy: 2 layers, 128 wide, one 128-wide head (d20's head_dim), so FP8 applies to every linear.
  L=2 C=128 H=1 T=64 V=512 B=4 WARMUP=1 STEPS=3
  [ -x "$BUILD/bin/kiln_tests" ] && [ -x "$BUILD/bin/bench_train_step" ] && [ -x "$BUILD/bin/bench_generate" ] ||
    die "dry run: build kiln_tests, bench_train_step and bench_generate in $BUILD first"
  echo "dry-run: CPU, toy sizes; no figure here is a GPU figure" >"$W/meta_note.txt"
else
  # ---- 1. dependencies and build ----
  BUILD=$ROOT/build-gpu
  DEV=cuda DTYPE=bf16 THREADS=16 COMPILE_BACKEND=inductor
  L=${GPU_CHECK_DEPTH:-20}
  C=$((64 * L)) H=$(((64 * L + 127) / 128)) T=2048 V=65536 B=${GPU_CHECK_BATCH:-32} WARMUP=3 STEPS=20
  PREFIX=${GPU_DEPS_PREFIX:-/opt/deps}
  [ -f .gpu-deps/unpack-deps.sh ] || die "no .gpu-deps/ here: the offline C++ dependencies were not carried. On the dev \
machine, in the repository root, run once: bench/gpu_check.sh --stage   (that is: $STAGE_CMD), then send .gpu-deps \
with the tree (device tool: carry [\".gpu-deps\"])"
  if [ ! -f "$PREFIX/env.sh" ]; then
    run_step unpack 120 bash .gpu-deps/unpack-deps.sh .gpu-deps "$PREFIX" || die "unpacking .gpu-deps into $PREFIX failed"
  fi
  # shellcheck disable=SC1091
  source "$PREFIX/env.sh"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$W/meta_gpu.txt" 2>&1
  say "GPU: $(cat "$W/meta_gpu.txt")"
  export CCACHE_DIR=${CCACHE_DIR:-$ROOT/build-gpu-ccache}
  BUILD_S=${GPU_CHECK_BUILD_S:-300}
  run_step configure 120 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$(command -v "$PY")" ||
    die "cmake configure failed (see $LOG)"
  t0=$SECONDS
  run_step build "$BUILD_S" cmake --build "$BUILD" -j 16 --target kiln_tests bench_train_step bench_generate
  rc=$?
  echo "$((SECONDS - t0))" >"$W/meta_build_s.txt"
  if [ $rc -ne 0 ]; then
    grep -q "exceeded" "$W/build.txt" &&
      die "the build took longer than its share of ${BUILD_S}s (GPU_CHECK_BUILD_S); run again on the same warm machine: ninja and ccache keep what was built"
    die "the build failed (see $LOG)"
  fi
fi
echo "$MODE" >"$W/meta_mode.txt"
echo "$L $C $H $T $V $B $WARMUP $STEPS" >"$W/meta_shape.txt"

# ---- 2. the GPU tests (skipping on a CPU) ----
(cd "$BUILD" && timeout 300 ctest -R '^Gpu\.|Cuda' --output-on-failure --output-junit "$W/ctest_gpu.xml" --timeout 240) \
  >"$W/ctest.txt" 2>&1
echo $? >"$W/ctest_rc.txt"
cat "$W/ctest.txt" >>"$LOG"
SUMMARY=$(grep -E "tests passed|tests failed" "$W/ctest.txt" | tail -1)
say "GPU tests: ${SUMMARY:-no summary line (ctest failed to run)}"

# ---- 3. training table ----
SHAPE=(custom --layers "$L" --width "$C" --heads "$H" --seq "$T" --vocab "$V" --batch "$B" --warmup "$WARMUP"
       --steps "$STEPS" --device "$DEV" --dtype "$DTYPE")
run_step train_kiln 150 "$BUILD/bin/bench_train_step" "${SHAPE[@]}" --weights-out "$W/init.safetensors" "$THREADS"
REF=("$PY" bench/train_step_ref.py "${SHAPE[@]}" --weights "$W/init.safetensors" --threads "$THREADS")
run_step train_eager 150 "${REF[@]}"
run_step train_compile 240 "${REF[@]}" --compile "$COMPILE_BACKEND"
run_step train_kiln_fp8 120 "$BUILD/bin/bench_train_step" "${SHAPE[@]}" "$THREADS" --fp8
rm -f "$W/init.safetensors"

# ---- 4. decode table ----
KILN_BENCH_BIN="$BUILD/bin/bench_generate" KILN_PYTHON="$PY" \
  run_step decode 180 bench/generate.sh --model "$L,$C,$H,$T,$V" "$THREADS" "$DEV"

# ---- 4b. where kiln's step spends its time: the profiler's table (Kineto; GPU kernels on CUDA) ----
run_step profile_kiln 90 "$BUILD/bin/bench_train_step" "${SHAPE[@]}" --warmup 1 --steps 1 "$THREADS" --profile 2 &&
  grep '^profile:' "$W/profile_kiln.txt" | sed 's/^profile: //' >"$OUT_DIR/profile_kiln.txt"

# ---- 5. the report ----
python3 bench/gpu_check_report.py "$W" "$OUT_DIR" "$MODE" | tee -a "$LOG"
rc=${PIPESTATUS[0]}
say "ctest: ${SUMMARY:-no summary line}"
say "written: $OUT_DIR/gpu_check.json, $OUT_DIR/gpu_check.md, $LOG"
exit "$rc"
