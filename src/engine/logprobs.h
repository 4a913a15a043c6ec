// Log-probabilities of tokens under the model's own distribution (its softcapped logits through a
// log-softmax, before temperature, top-k or top-p): what ./serve returns for `logprobs` and `echo`
// (OpenAI's completions API, lm-evaluation-harness's log-likelihood tasks).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace at {
class Tensor;
}

namespace kiln::engine {

// The most tokens a caller may ask alternatives for (OpenAI's bound on `logprobs`).
inline constexpr int64_t kMaxTopLogprobs = 20;

struct TokenLogprob {
  int64_t id = 0;
  float logprob = 0;
  std::vector<std::pair<int64_t, float>> top;  // the `top` most likely tokens, most likely first
};

// Token `id` under one position's logits (1-D, fp32), with the `top` most likely alternatives
// taken from the same log-softmax (so a greedy token's logprob equals its top entry exactly).
TokenLogprob token_logprob(const at::Tensor& logits, int64_t id, int64_t top);

}  // namespace kiln::engine
