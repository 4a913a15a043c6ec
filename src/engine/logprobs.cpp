// token_logprob; see logprobs.h.
#include "engine/logprobs.h"

#include <torch/torch.h>

namespace kiln::engine {

TokenLogprob token_logprob(const at::Tensor& logits, int64_t id, int64_t top) {
  const auto lp = torch::log_softmax(logits.to(torch::kFloat32), 0);
  TokenLogprob t;
  t.id = id;
  t.logprob = lp[id].item<float>();
  const int64_t k = std::min<int64_t>(top, lp.size(0));
  if (k > 0) {
    auto [vals, idx] = lp.topk(k);
    const auto v = vals.contiguous(), i = idx.contiguous();
    for (int64_t j = 0; j < k; ++j) t.top.emplace_back(i[j].item<int64_t>(), v[j].item<float>());
  }
  return t;
}

}  // namespace kiln::engine
