// Sampling; see sampler.h. Top-k and top-p are applied to the temperature-scaled logits in that
// order (as nanoGPT/HF do), then one draw from the seeded generator by the inverse CDF.
#include "engine/sampler.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <mutex>

#include "core/error.h"

namespace kiln::engine {

int64_t sample_next(const torch::Tensor& logits_in, const SamplingOptions& o, torch::Generator& gen) {
  torch::Tensor logits = logits_in.to(torch::kCPU, torch::kFloat32);  // the draw below reads host memory
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
  // Note [One draw]: at::multinomial without replacement draws one exponential per vocabulary
  // entry and runs a dozen ops of checks per call; serving calls this once per row per step. One
  // uniform u from the row's generator and a scan of the probabilities for the first index whose
  // cumulative mass passes u * total pick token i with probability p_i / total, the same law.
  const auto probs = logits.softmax(0).contiguous();
  const float* p = probs.const_data_ptr<float>();
  const int64_t V = probs.numel();
  double total = 0;
  for (int64_t i = 0; i < V; ++i) {
    if (!(p[i] >= 0.f) || std::isinf(p[i]))  // NaN or inf: the logits were not finite
      throw Error("sampling: the model's probabilities are not finite (NaN or inf logits)");
    total += p[i];
  }
  if (!(total > 0)) throw Error("sampling: every token has probability 0");
  uint64_t bits;
  {
    auto* g = at::check_generator<at::CPUGeneratorImpl>(gen);
    std::lock_guard<std::mutex> lock(g->mutex_);
    bits = g->random64();
  }
  const double target = double(bits >> 11) * 0x1.0p-53 * total;  // u in [0, 1) with 53 random bits
  double cum = 0;
  int64_t last = -1;
  for (int64_t i = 0; i < V; ++i) {
    if (p[i] <= 0.f) continue;
    cum += p[i];
    last = i;
    if (cum > target) return i;
  }
  return last;  // rounding left u * total at the very end: the last token with mass
}

uint64_t draw_seed(torch::Generator& gen) {
  return static_cast<uint64_t>(torch::randint(0, std::numeric_limits<int64_t>::max(), {1}, gen, torch::kInt64).item<int64_t>());
}

}  // namespace kiln::engine
