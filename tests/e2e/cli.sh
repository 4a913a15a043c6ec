#!/usr/bin/env bash
# End-to-end checks of the binaries' command lines, run from the repository root by ctest:
# every binary prints --help; config mistakes exit non-zero with one line naming key, value and
# expected type; a missing config is named; --check validates tiny.yaml on 1 and 2 ranks.
set -uo pipefail
cd "${1:-.}"
fail=0
check() {  # check NAME CONDITION-EXIT-CODE
  if [ "$2" = 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi
}

for b in pretrain midtrain sft rl eval sample chat tokenizer prepare import export; do
  out=$(./$b --help 2>&1); rc=$?
  [ $rc = 0 ] && grep -qi "usage" <<<"$out"; check "$b --help" $?
done

err=$(./pretrain configs/tiny.yaml train.max_steps=oops 2>&1 >/dev/null); rc=$?
[ $rc != 0 ]; check "bad override exits non-zero (rc=$rc)" $?
[ "$(wc -l <<<"$err")" = 1 ]; check "bad override is one line: $err" $?
grep -q 'train.max_steps' <<<"$err" && grep -q '"oops"' <<<"$err" && grep -q 'expected an integer' <<<"$err"
check "bad override names key, value and type" $?

err=$(./pretrain configs/missing.yaml 2>&1 >/dev/null); rc=$?
[ $rc != 0 ] && grep -q 'not found: configs/missing.yaml' <<<"$err"; check "missing config is named (rc=$rc)" $?

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf 'model:\n  detph: 4\n' > "$tmp/typo.yaml"
err=$(./pretrain "$tmp/typo.yaml" 2>&1 >/dev/null); rc=$?
[ $rc != 0 ] && grep -q "typo.yaml:2:3: unknown key 'model.detph'.*did you mean 'model.depth'" <<<"$err"
check "unknown key: $err" $?

err=$(./pretrain configs/tiny.yaml data.tokenizer=data/nowhere/tok.json run.dir="$tmp/r1" 2>&1 >/dev/null); rc=$?
[ $rc != 0 ] && grep -q 'does not exist' <<<"$err" && grep -q './tokenizer train' <<<"$err"
check "a missing tokenizer names the command that makes it" $?
./tokenizer train --vocab-size 265 --output "$tmp/tok.json" README.md >/dev/null 2>&1
err=$(./pretrain configs/tiny.yaml "data.tokenizer=$tmp/tok.json" 'data.train=data/nowhere/train_*.h5' run.dir="$tmp/r2" 2>&1 >/dev/null); rc=$?
[ $rc != 0 ] && grep -q 'no token shards there' <<<"$err" && grep -q './prepare --tokenizer' <<<"$err"
check "missing shards name the command that makes them" $?

out=$(./pretrain configs/tiny.yaml --check 2>&1); rc=$?
[ $rc = 0 ] && grep -q 'world 1' <<<"$out" && grep -q 'depth: 4' <<<"$out"; check "pretrain --check (1 rank)" $?

out=$(./tests/run_mpi.sh 2 ./pretrain configs/tiny.yaml --check 2>&1); rc=$?
if [ $rc = 77 ]; then echo "skip mpirun -np 2 (not allowed here: $out)"
else [ $rc = 0 ] && grep -q 'world 2' <<<"$out"; check "mpirun -np 2 pretrain --check" $?; fi

out=$(./tests/run_mpi.sh 2 ./pretrain configs/tiny.yaml train.max_steps=oops 2>&1); rc=$?
# A hang killed by the timeout (124, or 137 for SIGKILL) is a failure, not "non-zero"; the
# message must name the key.
if [ $rc != 77 ]; then [ $rc != 0 ] && [ $rc != 124 ] && [ $rc != 137 ] && grep -q 'train.max_steps' <<<"$out"
  check "mpirun -np 2 with a bad key exits non-zero naming the key, no hang (rc=$rc)" $?; fi

exit $fail
