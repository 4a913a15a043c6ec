// How one row is sampled: the options of engine::Generator, ./sample, ./chat and ./eval.
// Kept apart from sampler.h so that headers which only pass options around need no torch.
#pragma once
#include <cstdint>
#include <vector>

namespace kiln::engine {

struct SamplingOptions {
  int64_t max_new_tokens = 256;
  double temperature = 0.8;          // 0 = greedy
  int64_t top_k = 0;                 // 0 = all tokens
  double top_p = 1.0;                // 1 = no nucleus cut
  uint64_t seed = 0;                 // per row: same seed + prompt -> same output whatever else is in the batch
  std::vector<int64_t> stop_tokens;  // empty -> <|assistant_end|> and <|bos|>
  bool tools = true;                 // calculator tool use (python_start/end -> forced output_start..output_end)
  int64_t logprobs = -1;             // >= 0: record each token's logprob and this many top alternatives
  // With logprobs >= 0: also the prompt's tokens' logprobs (GenResult::prompt_logprobs), taken from
  // the prefill's own logits, chunk by chunk. max_new_tokens may then be 0: the row only scores.
  bool echo = false;
};

}  // namespace kiln::engine
