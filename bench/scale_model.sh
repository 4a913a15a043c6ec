#!/usr/bin/env bash
# The scale model (bench/scale_model.cpp) with its CPU check, in one run: measure the tiny model's
# compute and MPI's all-reduce on 2 ranks here, time real 2-rank ./pretrain runs (plain DDP and
# dist.zero1=true, median step time), then print the d20/d26/d32 table, the model's prediction
# for the 2-rank CPU run beside the measurement, and write bench/scale_model.png.
# Usage: bench/scale_model.sh [steps]   (needs mpirun and tinyshakespeare: KILN_DATA)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
STEPS=${1:-40}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
cmake --build build -j 2 --target bench_scale_model pretrain tokenizer prepare >/dev/null
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
source tests/e2e/tiny_data.sh
tiny_data "$tmp/data"
args=("${TINY_ARGS[@]}" train.max_steps=$STEPS train.device_batch_size=8 train.total_batch_size=1024
      checkpoint.every=0 eval.every=0 log.every=1000)
median_dt() {  # median dt_ms over the steps after the first 5, in seconds
  python3 -c "import json,sys,statistics as s; d=[json.loads(l)['dt_ms'] for l in open(sys.argv[1]) if '\"dt_ms\"' in l][5:]; print(s.median(d)/1e3)" "$1"
}
tests/run_mpi.sh 2 ./pretrain "${args[@]}" run.dir="$tmp/ddp" >"$tmp/ddp.log" 2>&1
tests/run_mpi.sh 2 ./pretrain "${args[@]}" dist.zero1=true run.dir="$tmp/z" >"$tmp/z.log" 2>&1
tests/run_mpi.sh 2 build/bin/bench_scale_model --measure >"$tmp/cpu.json"
build/bin/bench_scale_model --cpu "$tmp/cpu.json" --accum 1 --png bench/scale_model.png \
  --measured-ddp "$(median_dt "$tmp/ddp/metrics.jsonl")" --measured-zero1 "$(median_dt "$tmp/z/metrics.jsonl")"
