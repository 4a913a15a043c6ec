// Load a trained model for inference (sample, chat, eval): the newest complete checkpoint under
// a path, its config, its own copy of the tokenizer, and the weights on a device.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "core/config.h"
#include "model/lm.h"
#include "tokenizer/tokenizer.h"

namespace kiln::ckpt {

struct LoadedModel {
  std::string dir;  // the step directory used
  int64_t step = 0;
  Config cfg;
  std::shared_ptr<const tok::Tokenizer> tokenizer;
  model::Model model;
};

LoadedModel load_model(const std::string& ckpt_path, const torch::Device& device);

}  // namespace kiln::ckpt
