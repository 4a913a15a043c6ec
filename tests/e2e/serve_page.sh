#!/usr/bin/env bash
# The chat page of ./serve in a real browser (issue 12): a tiny model is pretrained for 10 steps,
# ./serve starts, and headless Chromium (Debian's chromium, driven over the DevTools protocol by
# tests/serve/page_test.py) opens /, types a message and sees the reply stream in; regenerate, a
# refused request's error and clear are checked too. The screenshot is kept as an artifact:
# $KILN_BUILD_DIR/artifacts/serve_page.png (default build/). Needs ../shared/data and chromium.
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data, TINY_ARGS, skip
py=${KILN_PYTHON:-python3}
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || skip "$chromium is not installed (launch/setup.sh installs chromium)"
e2e_tmp  # tmp (removed on exit), fail
spid=
trap '[ -n "$spid" ] && kill "$spid" 2>/dev/null; rm -rf "$tmp"' EXIT

tiny_data "$tmp"
./pretrain "${TINY_ARGS[@]}" model.depth=2 model.seq_len=64 train.max_steps=10 train.device_batch_size=4 \
  train.total_batch_size=1024 eval.every=0 checkpoint.every=10 run.dir="$tmp/run" >"$tmp/train.log" 2>&1 \
  || { cat "$tmp/train.log"; fail "pretrain"; }
./serve --ckpt "$tmp/run" --port 0 --slots 2 --model-name kiln-tiny >"$tmp/serve.log" 2>&1 &
spid=$!
url=
for _ in $(seq 1 300); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$tmp/serve.log" | head -1)
  [ -n "$url" ] && break
  kill -0 "$spid" 2>/dev/null || { cat "$tmp/serve.log"; fail "./serve exited"; }
  sleep 0.1
done
[ -n "$url" ] || fail "./serve did not print its URL"
shot=${KILN_BUILD_DIR:-$root/build}/artifacts/serve_page.png
CHROMIUM=$chromium "$py" tests/serve/page_test.py "$url" "$shot" \
  || { echo "---- server log ----"; cat "$tmp/serve.log"; fail "the chat page in Chromium"; }
[ -s "$shot" ] || fail "no screenshot at $shot"
