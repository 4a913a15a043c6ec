#!/usr/bin/env bash
# launch/pretrain.sh: runs NGPU ranks of the command in KILN_PRETRAIN (here the stand-in trainer)
# with the config and overrides passed through, and rejects a bad NGPU with usage (exit 2).
source "$(dirname "$0")/lib.sh"
fake=$1
set +e; "$root/launch/pretrain.sh" 0 "$root/configs/tiny.yaml" 2>"$tmp/err"; rc=$?; set -e
[ "$rc" = 2 ] && grep -q "NGPU must be a positive integer" "$tmp/err" || fail "NGPU=0 gave rc $rc: $(cat "$tmp/err")"
KILN_PRETRAIN="$fake" KILN_MPIRUN_ARGS="--oversubscribe" timeout --signal=KILL 120 "$root/launch/pretrain.sh" 2 \
  "$root/configs/tiny.yaml" run.dir="$tmp/run" train.max_steps=6 probe.step_ms=1 || fail "launch failed"
diff <(seq 0 5 | sed 's/.*/step & world 2/') "$tmp/run/steps.txt" || fail "expected 6 steps on 2 ranks"
echo "PASS: launch/pretrain.sh 2 ran 6 steps on a world of 2"
