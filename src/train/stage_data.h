// The data side of a stage: pretraining reads packed token shards (PretrainLoader); midtraining
// and SFT read chat shards (ChatLoader, packed or padded) from a task mixture. Also the fixed chat
// prompts the chat stages sample from, and the horizon that train.epochs asks for.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "core/config.h"
#include "data/loader.h"
#include "tokenizer/tokenizer.h"
#include "train/stage.h"

namespace kiln::train {

struct StageLoaders {
  std::unique_ptr<data::Loader> train, val;  // val may be null
  // Steps covering train.epochs passes over data.train (-1: train.epochs unused).
  int64_t epoch_steps = -1;
};

// Throws kiln::Error naming the key and the command that makes the shards when none are found,
// and when a layout does not fit the stage (padded rows need chat shards).
StageLoaders make_stage_loaders(Stage stage, const Config& cfg, const tok::Tokenizer& tok, int rank, int world,
                                torch::Device device);

// A few fixed chat prompts rendered for completion (ending in <|assistant_start|>).
std::vector<std::vector<int64_t>> chat_sample_prompts(const tok::Tokenizer& tok);

}  // namespace kiln::train
