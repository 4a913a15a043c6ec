# Sourced by the ./serve tests and bench/serve_bench.sh (after tiny_data.sh): serve_model DIR
# [DEPTH] pretrains a tiny byte-level model (context 640) for 10 steps into DIR/run (with
# $PRETRAIN_BIN when set); start_server
# LOG ARGS... starts ./serve (or $SERVE_BIN) --ckpt $ckpt on a free port, adds its pid to serve_pids and sets url
# once it prints its URL; stop_servers sends SIGTERM to what is left and SIGKILL to a server still
# running 10 s (SERVE_STOP_GRACE) later, and then fails (returns 1: a server must stop on SIGTERM); serve_cleanup is
# the scripts' EXIT trap (stop_servers, remove $tmp, exit 1 if a server needed SIGKILL).
serve_pids=()
serve_model() {
  local dir=$1 depth=${2:-2}
  tiny_data "$dir"
  "${PRETRAIN_BIN:-./pretrain}" "${TINY_ARGS[@]}" model.depth="$depth" model.seq_len=64 train.max_steps=10 train.device_batch_size=4 \
    train.total_batch_size=1024 eval.every=0 checkpoint.every=10 run.dir="$dir/run" >"$dir/train.log" 2>&1 \
    || { cat "$dir/train.log"; echo "FAIL: pretrain"; exit 1; }
  ckpt=$dir/run
}
start_server() {
  local log=$1
  shift
  "${SERVE_BIN:-./serve}" --ckpt "$ckpt" --port 0 "$@" >"$log" 2>&1 &
  serve_pids+=($!)
  url=
  for _ in $(seq 1 300); do
    url=$(grep -ao 'http://127.0.0.1:[0-9]*' "$log" | head -1) || true
    [ -n "$url" ] && return 0
    kill -0 "${serve_pids[-1]}" 2>/dev/null || { cat "$log"; echo "FAIL: ./serve exited"; exit 1; }
    sleep 0.1
  done
  cat "$log"; echo "FAIL: ./serve did not print its URL"; exit 1
}
# running PID: the process exists and is no zombie (an exited child not yet waited for).
running() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
  [ -n "$st" ] && [ "$st" != Z ]
}
stop_servers() {
  local p rc=0 grace=${SERVE_STOP_GRACE:-10}
  for p in "${serve_pids[@]}"; do
    running "$p" || continue
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 1 $((grace * 10))); do running "$p" || break; sleep 0.1; done
    if running "$p"; then
      kill -KILL "$p" 2>/dev/null
      echo "FAIL: ./serve (pid $p) was still running $grace s after SIGTERM: killed with SIGKILL"
      rc=1
    fi
    wait "$p" 2>/dev/null
  done
  serve_pids=()
  return $rc
}
serve_cleanup() {
  local rc=$?
  stop_servers || rc=1
  rm -rf "$tmp"
  exit $rc
}
