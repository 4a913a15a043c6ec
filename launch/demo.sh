#!/usr/bin/env bash
# The main job on this machine, end to end on CPU: set up and build, fetch tinyshakespeare (the
# local copy in ../shared/data first), train a byte-level tokenizer, write HDF5 shards, pretrain
# configs/tiny_v2.yaml (nanochat's current recipe: model.arch nanochat2 + optim.recipe muon_adamw;
# a few minutes on 2 cores) and print samples, then midtrain and SFT it on GSM8K and ShareGPT chats
# (configs/tiny_{mid,sft}.yaml, a few minutes more) and show one chat exchange.
# Stages that this build does not implement yet stop the demo with a plain message instead of failing.
set -uo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n[demo] %s\n' "$*"; }
step() {  # run a stage; exit code 2 means "not implemented yet in this build"
  "$@"; rc=$?
  if [ $rc = 2 ]; then say "stopping here: '$1' is not implemented yet in this build (see README.md, Status)."; exit 0; fi
  [ $rc = 0 ] || { say "'$*' failed with exit code $rc"; exit $rc; }
}

# Only the binaries the demo runs (./launch/test.sh builds the rest, tests included).
KILN_BUILD_TARGETS="tokenizer prepare pretrain sample midtrain sft" ./launch/setup.sh || exit 1
D=data/tinyshakespeare
say "fetching tinyshakespeare into $D"
step data_tools/fetch.sh tinyshakespeare "$D"
say "training a byte-level tokenizer (256 bytes + 9 special tokens)"
step ./tokenizer train --vocab-size 265 --output "$D/tokenizer.json" "$D/input.txt"
say "writing token shards (last 10% of the text is validation)"
step ./prepare --tokenizer "$D/tokenizer.json" --output "$D" --val-fraction 0.1 "$D/input.txt"
say "pretraining configs/tiny_v2.yaml on CPU: nanochat's current model and optimizer (a fresh run: runs/tiny_v2 from an earlier demo is removed)"
rm -rf runs/tiny_v2
start=$(date +%s)
step ./pretrain configs/tiny_v2.yaml
say "pretraining took $(( $(date +%s) - start )) s"
say "sampling"
step ./sample --ckpt runs/tiny_v2/ckpt --start "ROMEO:" --num-samples 2 --max-new-tokens 300 --temperature 0.8
say "chat data: GSM8K and ShareGPT identity chats as chat shards (data_tools/chat_data.sh tiny)"
step data_tools/chat_data.sh tiny
say "midtraining configs/tiny_mid.yaml from runs/tiny_v2/ckpt, then SFT configs/tiny_sft.yaml (fresh runs)"
rm -rf runs/tiny_mid runs/tiny_sft
start=$(date +%s)
step ./midtrain configs/tiny_mid.yaml init.from=runs/tiny_v2/ckpt
step ./sft configs/tiny_sft.yaml
say "midtraining + SFT took $(( $(date +%s) - start )) s"
say "one chat exchange with runs/tiny_sft (greedy; a 0.9M-parameter byte model learns the format, not the math)"
step ./sample --ckpt runs/tiny_sft/ckpt --chat --start "Tom has 3 apples and buys 5 more. How many apples does he have?" \
  --num-samples 1 --temperature 0 --max-new-tokens 300
