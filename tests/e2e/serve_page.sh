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
source tests/e2e/serve_lib.sh  # serve_model, start_server, stop_servers
trap serve_cleanup EXIT

serve_model "$tmp"
start_server "$tmp/serve.log" --slots 2 --model-name kiln-tiny
shot=${KILN_BUILD_DIR:-$root/build}/artifacts/serve_page.png
CHROMIUM=$chromium "$py" tests/serve/page_test.py "$url" "$shot" \
  || { echo "---- server log ----"; cat "$tmp/serve.log"; fail "the chat page in Chromium"; }
[ -s "$shot" ] || fail "no screenshot at $shot"
