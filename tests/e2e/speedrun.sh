#!/usr/bin/env bash
# launch/speedrun.sh --tiny end to end, killed and rerun, TensorBoard files read by the real
# tensorboard package: tests/e2e/speedrun.py (its docstring lists the checks). Needs the local
# data copies (KILN_DATA, default ../shared/data: no network) and tensorboard; else skips (77,
# a failure under CI=true). Usage: speedrun.sh [REPO_ROOT]
set -uo pipefail
root=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
source "$root/tests/e2e/skip.sh"  # skip
py=${KILN_PYTHON:-python3}
data=${KILN_DATA:-$root/../shared/data}
for f in tinyshakespeare/input.txt gsm8k/train.jsonl gsm8k/test.jsonl arc/ARC-Easy-test.jsonl mmlu \
         humaneval/HumanEval.jsonl.gz chat/fastchat/dummy_conversation.json; do
  [ -e "$data/$f" ] || skip "$data/$f not found (the tiny speedrun test reads local copies only)"
done
"$py" -c "import tensorboard, numpy" 2>/dev/null || skip "$py has no tensorboard/numpy: run ./launch/setup.sh"
export KILN_DATA=$data
exec "$py" "$root/tests/e2e/speedrun.py" "$root"
