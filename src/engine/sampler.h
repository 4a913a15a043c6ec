// Sampling one next token from logits: temperature (0 = greedy), top-k, top-p, a seeded
// generator. engine::Generator calls it once per row per step, with the row's own generator.
#pragma once
#include <torch/torch.h>

#include "engine/sampling_options.h"

namespace kiln::engine {

// Next-token id from the logits of one position (1-D, fp32).
int64_t sample_next(const torch::Tensor& logits, const SamplingOptions& o, torch::Generator& gen);

// A 64-bit seed drawn from `gen` (advancing it): callers that keep one generator across calls
// (the Trainer's checkpointed sample RNG) seed each Generator row from it.
uint64_t draw_seed(torch::Generator& gen);

}  // namespace kiln::engine
