// Sampling one next token from logits: temperature (0 = greedy), top-k, top-p, a seeded
// generator. engine::Generator calls it once per row per step, with the row's own generator.
#pragma once
#include <torch/torch.h>

#include "engine/sampling_options.h"

namespace kiln::engine {

// Temperatures below this sample greedily (as 0 does).
inline constexpr double kMinTemperature = 1e-6;

// Next-token id from the logits of one position (1-D, fp32). Never an empty set: top_p keeps at
// least the most likely token, and a tiny temperature is greedy.
int64_t sample_next(const torch::Tensor& logits, const SamplingOptions& o, torch::Generator& gen);

// A 64-bit seed drawn from `gen` (advancing it): callers that keep one generator across calls
// (the Trainer's checkpointed sample RNG) seed each Generator row from it.
uint64_t draw_seed(torch::Generator& gen);

}  // namespace kiln::engine
