// Plain autoregressive sampling from a GPT: temperature (0 = greedy), top-k, top-p, a seeded
// generator. Recomputes the (cropped) context every token — simple and exact; the KV-cache engine
// for chat and eval replaces it where speed matters.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <vector>

#include "engine/sampling_options.h"
#include "model/gpt.h"

namespace kiln::engine {

// Next-token id from the logits of one position (1-D, fp32).
int64_t sample_next(const torch::Tensor& logits, const SamplingOptions& o, torch::Generator& gen);

// Generates after `prompt`; `on_token` sees each new id and may return false to stop early.
std::vector<int64_t> generate(model::GPT& model, const std::vector<int64_t>& prompt, const SamplingOptions& o,
                              torch::Generator& gen, const std::function<bool(int64_t)>& on_token = {});

}  // namespace kiln::engine
