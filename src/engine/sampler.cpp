// Sampling; see sampler.h. Top-k and top-p are applied to the temperature-scaled logits in that
// order (as nanoGPT/HF do), then one multinomial draw from the seeded generator.
#include "engine/sampler.h"

namespace kiln::engine {

int64_t sample_next(const torch::Tensor& logits_in, const SamplingOptions& o, torch::Generator& gen) {
  torch::Tensor logits = logits_in.to(torch::kFloat32);
  if (o.temperature <= 0.0) return logits.argmax().item<int64_t>();
  logits = logits / o.temperature;
  if (o.top_k > 0 && o.top_k < logits.size(0)) {
    auto kth = std::get<0>(logits.topk(o.top_k)).min();
    logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
  }
  if (o.top_p < 1.0) {
    auto [sorted, idx] = logits.sort(/*dim=*/0, /*descending=*/true);
    auto cum = sorted.softmax(0).cumsum(0);
    // Drop a token when the mass before it already reaches top_p (the first token always stays).
    auto drop_sorted = (cum - sorted.softmax(0)) >= o.top_p;
    auto drop = torch::zeros_like(drop_sorted).scatter(0, idx, drop_sorted);
    logits = logits.masked_fill(drop, -std::numeric_limits<float>::infinity());
  }
  auto probs = logits.softmax(0);
  return at::multinomial(probs, 1, /*replacement=*/false, gen).item<int64_t>();
}

std::vector<int64_t> generate(model::GPT& model, const std::vector<int64_t>& prompt, const SamplingOptions& o,
                              torch::Generator& gen, const std::function<bool(int64_t)>& on_token) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const auto device = model->parameters().front().device();
  const int64_t ctx = model->config().seq_len;
  std::vector<int64_t> seq = prompt, out;
  for (int64_t i = 0; i < o.max_new_tokens; ++i) {
    const int64_t start = std::max<int64_t>(0, static_cast<int64_t>(seq.size()) - ctx);
    auto idx = torch::tensor(std::vector<int64_t>(seq.begin() + start, seq.end()), torch::kInt64)
                   .view({1, -1})
                   .to(device);
    auto logits = model->forward(idx).index({0, -1}).to(torch::kCPU);
    const int64_t next = sample_next(logits, o, gen);
    seq.push_back(next);
    out.push_back(next);
    if (on_token && !on_token(next)) break;
  }
  model->train(was_training);
  return out;
}

}  // namespace kiln::engine
