#!/usr/bin/env bash
# ./serve through the official openai client (issue 12): a tiny byte-level model (context 640) is
# pretrained for 10 steps; one server with 8 slots + 16 queue places answers chat and completions,
# streamed and not, n=2, stop, seeds, usage (against the reference tokenizer and GPT), every 400 /
# 404, and 16 parallel streaming clients that must equal the same requests sent alone; a second
# server with 1 slot + 1 queue place and --api-key shows 401, a client that hangs up mid-stream
# freeing its slot within one step, and 503 on a burst. Needs ../shared/data and the openai package.
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data, TINY_ARGS, skip
py=${KILN_PYTHON:-python3}
"$py" -c "import openai, requests, regex, torch" 2>/dev/null || skip "$py lacks openai/requests/regex/torch (launch/setup.sh)"
e2e_tmp  # tmp (removed on exit), fail
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

tiny_data "$tmp"
./pretrain "${TINY_ARGS[@]}" model.depth=2 model.seq_len=64 train.max_steps=10 train.device_batch_size=4 \
  train.total_batch_size=1024 eval.every=0 checkpoint.every=10 run.dir="$tmp/run" >"$tmp/train.log" 2>&1 \
  || { cat "$tmp/train.log"; fail "pretrain"; }

# start_server LOG ARGS...: starts ./serve on a free port; sets url once it prints its URL.
start_server() {
  local log=$1
  shift
  ./serve --ckpt "$tmp/run" --port 0 "$@" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 300); do
    url=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1)
    [ -n "$url" ] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$log"; fail "./serve exited"; }
    sleep 0.1
  done
  cat "$log"; fail "./serve did not print its URL"
}

start_server "$tmp/main.log" --slots 8 --queue 16 --model-name kiln-tiny
"$py" tests/serve/openai_client_test.py main "$url" "$tmp/tok.json" "$tmp/run/ckpt/step_00000010" \
  || { echo "---- server log ----"; cat "$tmp/main.log"; fail "openai client tests (8 slots)"; }
kill -TERM "${pids[-1]}"; wait "${pids[-1]}"; rc=$?
[ $rc = 0 ] || fail "SIGTERM: ./serve exited with $rc"
grep -q 'kiln serve: stopped' "$tmp/main.log" || fail "SIGTERM did not stop the server cleanly"

start_server "$tmp/small.log" --slots 1 --queue 1 --api-key sekrit
"$py" tests/serve/openai_client_test.py small "$url" sekrit \
  || { echo "---- server log ----"; cat "$tmp/small.log"; fail "openai client tests (1 slot, API key)"; }

# Refusals at start: a missing checkpoint, a taken port.
err=$(./serve --ckpt "$tmp/nowhere" 2>&1 >/dev/null); rc=$?
[ $rc != 0 ] && [ $rc -lt 128 ] || fail "a missing checkpoint: rc=$rc $err"
port=${url##*:}
err=$(./serve --ckpt "$tmp/run" --port "$port" 2>&1 >/dev/null); rc=$?
[ $rc != 0 ] && [ $rc -lt 128 ] && echo "$err" | grep -q "cannot listen" || fail "a taken port: rc=$rc $err"
echo "ok: ./serve through the openai client"
