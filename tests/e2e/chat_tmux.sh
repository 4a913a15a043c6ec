#!/usr/bin/env bash
# ./chat driven as a user would, through tmux (issue 10): a tiny model (context 16, so 160
# positions) is pretrained for a few steps, then in one terminal session: two turns, `clear`, one
# more turn, `quit`. Turn i samples with seed 42 + i (temperature 1): replies are deterministic.
# Checks: every reply streams into the terminal; after `clear` the reply equals the one-shot
# `./chat -p` reply with seed 42 (a fresh conversation). That the conversation is kept is shown
# by its length: with --max-tokens 120 the first turn fits the 160 positions, and the second turn
# does not (so chat says it starts over) exactly because the first turn is still in it; after
# `clear` the same question fits again. `quit`, `exit` and Ctrl-D leave with status 0.
# Needs ../shared/data (else skips, 77).
set -uo pipefail
cd "${1:-.}"
root=$(pwd)
source tests/e2e/tiny_data.sh  # tiny_data
command -v tmux >/dev/null || { echo "FAIL: tmux is not installed (launch/setup.sh installs it)"; exit 1; }
tmp=$(mktemp -d)
sock="$tmp/tmux.sock"
t() { tmux -S "$sock" "$@"; }
trap 't kill-server 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; echo "---- screen ----"; t capture-pane -p -J -S - -t chat 2>/dev/null; exit 1; }

tiny_data "$tmp"
./pretrain "${TINY_ARGS[@]}" model.depth=2 model.seq_len=16 train.max_steps=10 train.device_batch_size=4 train.total_batch_size=256 \
  eval.every=0 checkpoint.every=10 run.dir="$tmp/run" >"$tmp/train.log" 2>&1 || { cat "$tmp/train.log"; fail "pretrain"; }
base=(./chat --ckpt "$tmp/run" --temperature 1 --top-k 0 --seed 42)
chat=("${base[@]}" --max-tokens 24)

screen() { t capture-pane -p -J -S - -t chat; }
# wait_for N: until the screen shows the "User: " prompt N times (the reply before it is done).
wait_for() {
  for _ in $(seq 1 600); do
    [ "$(screen | grep -c '^User: ')" -ge "$1" ] && return 0
    sleep 0.1
  done
  fail "timed out waiting for prompt number $1"
}
say() { t send-keys -t chat -l "$1"; t send-keys -t chat Enter; }

t new-session -d -s chat -x 150 -y 50 "${chat[*]}; echo CHAT_EXIT=\$?; sleep 600"
wait_for 1
say "Hello, who are you?";     wait_for 2
say "And where do you live?";  wait_for 3
say "clear";                   wait_for 4
say "And where do you live?";  wait_for 5
say "quit"
for _ in $(seq 1 100); do screen | grep -q CHAT_EXIT= && break; sleep 0.1; done
screen >"$tmp/screen.txt"
grep -q '^CHAT_EXIT=0$' "$tmp/screen.txt" || fail "quit did not exit with status 0"
grep -q '(conversation cleared)' "$tmp/screen.txt" || fail "clear was not acknowledged"

# The replies: the text after each "Assistant: " up to the next "User: " prompt.
"${KILN_PYTHON:-python3}" - "$tmp/screen.txt" "$tmp" <<'PY' || fail "reply extraction"
import re, sys
s = open(sys.argv[1]).read()
replies = [r.strip() for r in re.findall(r"\nAssistant: (.*?)\nUser: ", s, re.S)]
assert len(replies) == 3, replies
for i, r in enumerate(replies):
    open(f"{sys.argv[2]}/reply{i}.txt", "w").write(r + "\n")
PY
for i in 0 1 2; do [ -s "$tmp/reply$i.txt" ] && [ "$(tr -d ' \n' <"$tmp/reply$i.txt")" != "" ] || fail "reply $i is empty"; done
echo "turn 1: $(head -c 80 "$tmp/reply0.txt" | tr '\n' ' ')"
echo "turn 2: $(head -c 80 "$tmp/reply1.txt" | tr '\n' ' ')"
echo "after clear: $(head -c 80 "$tmp/reply2.txt" | tr '\n' ' ')"

# One-shot: the same question in a fresh conversation, with the seed of a first turn.
"${chat[@]}" -p "And where do you live?" >"$tmp/oneshot.txt" 2>"$tmp/err" || fail "chat -p: $(cat "$tmp/err")"
same() { "${KILN_PYTHON:-python3}" -c 'import sys; a, b = (open(p).read().strip() for p in sys.argv[1:]); sys.exit(a != b)' "$1" "$2"; }
same "$tmp/oneshot.txt" "$tmp/reply2.txt" || fail "the reply after clear is not the one-shot reply: $(cat "$tmp/oneshot.txt")"
grep -q 'no longer fits' "$tmp/screen.txt" && fail "a 24-token conversation overflowed"

# The conversation is kept: its second turn overflows the 160 positions, the first does not, and
# after `clear` the second question alone fits again. Then `exit` leaves.
t kill-session -t chat
long=("${base[@]}" --max-tokens 120)
t new-session -d -s chat -x 150 -y 50 "${long[*]}; echo CHAT_EXIT=\$?; sleep 600"
wait_for 1; say "Hello, who are you?"
wait_for 2; [ "$(screen | grep -c 'no longer fits')" = 0 ] || fail "the first turn overflowed"
say "And where do you live?"
wait_for 3; [ "$(screen | grep -c 'no longer fits')" = 1 ] || fail "the second turn did not carry the first"
say "clear"; wait_for 4; say "And where do you live?"
wait_for 5; [ "$(screen | grep -c 'no longer fits')" = 1 ] || fail "after clear the conversation still carried old turns"
say "exit"
for _ in $(seq 1 100); do screen | grep -q CHAT_EXIT= && break; sleep 0.1; done
screen | grep -q '^CHAT_EXIT=0$' || fail "exit did not leave with status 0"

# Ctrl-D leaves too.
t kill-session -t chat
t new-session -d -s chat -x 150 -y 50 "${chat[*]}; echo CHAT_EXIT=\$?; sleep 600"
wait_for 1; t send-keys -t chat C-d
for _ in $(seq 1 100); do screen | grep -q CHAT_EXIT= && break; sleep 0.1; done
screen | grep -q '^CHAT_EXIT=0$' || fail "Ctrl-D did not leave with status 0"

# A missing checkpoint is a one-line error, not a crash.
err=$(./chat --ckpt "$tmp/nowhere" -p hi 2>&1 >/dev/null); rc=$?
[ $rc != 0 ] && [ $rc -lt 128 ] || fail "a missing checkpoint: rc=$rc $err"
echo "ok: chat through tmux (2 turns, clear, quit, exit, Ctrl-D) and -p"
