#!/usr/bin/env bash
# ./serve's evaluation API (issue 23): a tiny byte-level model (context 640) is pretrained for 10
# steps; a server with 4 slots answers tests/serve/eval_api_test.py (logprobs, echo, max_tokens 0,
# prompt forms, chat logprobs against a PyTorch log-softmax of the same checkpoint; /tokenize,
# /detokenize, /tokenizer_info, /metrics; attacks on every new field), then lm-eval itself
# (tests/serve/lm_eval_test.py) drives it; a second server with --api-key and 1 slot guards the new
# endpoints and frees the row of a non-streaming client that hangs up within a second.
# Needs ../shared/data and requests, torch, regex, jinja2, prometheus_client, lm_eval.
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data, TINY_ARGS, skip
py=${KILN_PYTHON:-python3}
"$py" -c "import requests, regex, torch, jinja2, prometheus_client, lm_eval" 2>/dev/null \
  || skip "$py lacks requests/regex/torch/jinja2/prometheus_client/lm_eval (launch/setup.sh)"
e2e_tmp  # tmp (removed on exit), fail
source tests/e2e/serve_lib.sh  # serve_model, start_server, stop_servers
trap serve_cleanup EXIT

serve_model "$tmp"
start_server "$tmp/main.log" --slots 4 --queue 8 --model-name kiln-tiny
"$py" tests/serve/eval_api_test.py main "$url" "$tmp/tok.json" "$tmp/run/ckpt/step_00000010" \
  || { echo "---- server log ----"; tail -50 "$tmp/main.log"; fail "evaluation API tests"; }
"$py" tests/serve/lm_eval_test.py "$url" "$tmp" "$tmp/run/ckpt/step_00000010" \
  || { echo "---- server log ----"; tail -50 "$tmp/main.log"; fail "lm-eval against ./serve"; }
start_server "$tmp/key.log" --slots 1 --api-key sekrit --prefill-chunk 1  # a long prefill to hang up in
"$py" tests/serve/eval_api_test.py key "$url" sekrit || fail "the new endpoints with --api-key"
echo "ok: ./serve's evaluation API"
