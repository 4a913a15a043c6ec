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
source tests/e2e/serve_lib.sh  # serve_model, start_server, stop_servers
trap serve_cleanup EXIT

serve_model "$tmp"
start_server "$tmp/main.log" --slots 8 --queue 16 --model-name kiln-tiny
"$py" tests/serve/openai_client_test.py main "$url" "$tmp/tok.json" "$tmp/run/ckpt/step_00000010" \
  || { echo "---- server log ----"; cat "$tmp/main.log"; fail "openai client tests (8 slots)"; }
kill -TERM "${serve_pids[-1]}"; wait "${serve_pids[-1]}"; rc=$?
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
