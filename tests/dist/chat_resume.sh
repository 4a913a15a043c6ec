#!/usr/bin/env bash
# The chat stages on 2 ranks (mpirun, CPU): `./midtrain` then `./sft`, each run uninterrupted (A)
# and again (B) with both ranks SIGKILLed after a step chosen at random, then `--resume`d on 2
# ranks: every loss and validation record must equal run A's bit for bit. Needs mpirun, KILN_DATA.
source "$(dirname "$0")/lib.sh"
source "$root/tests/e2e/chat_data.sh"  # chat_setup, MID_ARGS, SFT_ARGS
chat_setup "$tmp"
steps=12
extra=(train.max_steps=$steps checkpoint.every=3 checkpoint.keep_last=0 eval.every=6)
chat_resume_check 2 midtrain "${MID_ARGS[@]}" "${extra[@]}"
grep -q "1024 tokens per step = 2 ranks x 4 seqs x 128 tokens x 1 accumulation" "$tmp/mid_a.log" || fail "not 2 ranks"
chat_resume_check 2 sft "${SFT_ARGS[@]}" "${extra[@]}"
echo "PASS"
