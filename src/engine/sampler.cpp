// Sampling; see sampler.h. Top-k and top-p are applied to the temperature-scaled logits in that
// order (as nanoGPT/HF do), then one multinomial draw from the seeded generator.
#include "engine/sampler.h"

namespace kiln::engine {

int64_t sample_next(const torch::Tensor& logits_in, const SamplingOptions& o, torch::Generator& gen) {
  torch::Tensor logits = logits_in.to(torch::kFloat32);
  // Below kMinTemperature the distribution is the argmax's in all but ties, and logits / T would
  // overflow fp32 (1e-40 gives inf - inf = NaN): sample greedily.
  if (o.temperature < kMinTemperature) return logits.argmax().item<int64_t>();
  logits = logits / o.temperature;
  if (o.top_k > 0 && o.top_k < logits.size(0)) {
    auto kth = std::get<0>(logits.topk(o.top_k)).min();
    logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
  }
  if (o.top_p < 1.0) {
    auto [sorted, idx] = logits.sort(/*dim=*/0, /*descending=*/true);
    auto cum = sorted.softmax(0).cumsum(0);
    // Drop a token when the mass before it already reaches top_p (the first token always stays).
    // A top_p below fp32's smallest number (1e-300) compares as 0: keep the first token explicitly.
    auto drop_sorted = (cum - sorted.softmax(0)) >= o.top_p;
    drop_sorted.narrow(0, 0, 1).fill_(false);
    auto drop = torch::zeros_like(drop_sorted).scatter(0, idx, drop_sorted);
    logits = logits.masked_fill(drop, -std::numeric_limits<float>::infinity());
  }
  auto probs = logits.softmax(0);
  return at::multinomial(probs, 1, /*replacement=*/false, gen).item<int64_t>();
}

uint64_t draw_seed(torch::Generator& gen) {
  return static_cast<uint64_t>(torch::randint(0, std::numeric_limits<int64_t>::max(), {1}, gen, torch::kInt64).item<int64_t>());
}

}  // namespace kiln::engine
