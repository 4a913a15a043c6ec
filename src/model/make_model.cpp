// make_model: the architecture a config names, built, initialised and placed on its device. The
// one place that maps model.arch to a class (lm.h).
#include "core/error.h"
#include "model/gpt.h"
#include "model/gpt2.h"
#include "model/gpt_v2.h"
#include "model/lm.h"

namespace kiln::model {

int64_t resolve_vocab_size(const kiln::ModelConfig& m, int64_t vocab_size) {
  if (m.vocab_size > 0 && vocab_size > 0 && m.vocab_size < vocab_size)
    throw Error("model.vocab_size = " + std::to_string(m.vocab_size) + " is smaller than the tokenizer's " +
                    std::to_string(vocab_size) + " tokens",
                "leave model.vocab_size at 0 to take it from the tokenizer");
  const int64_t v = m.vocab_size > 0 ? m.vocab_size : vocab_size;
  if (v <= 0) throw Error("model: vocabulary size unknown (model.vocab_size = 0 and no tokenizer)");
  return v;
}

Model make_model(const kiln::ModelConfig& m, int64_t vocab_size, uint64_t seed, torch::Device device, Weights weights) {
  // Built on the CPU, initialised there (a seed gives the same weights on every device), then
  // moved; on the meta device only the shapes exist (parameter counts, FLOPs).
  const torch::Device build = device.is_meta() ? device : torch::Device(torch::kCPU);
  Model model;
  if (m.arch == "nanochat") model = std::make_shared<GPTImpl>(GPTConfig::from(m, vocab_size), build);
  else if (m.arch == "nanochat2") model = std::make_shared<GPTv2Impl>(GPTv2Config::from(m, vocab_size), build);
  else if (m.arch == "gpt2") model = std::make_shared<GPT2Impl>(GPT2Config::from(m, vocab_size), build);
  else throw Error("model.arch = \"" + m.arch + "\" is not an architecture kiln builds", "use nanochat, nanochat2 or gpt2");
  if (device.is_meta()) return model;
  if (weights == Weights::Initialised) model->init_weights(seed);
  model->to(device);
  return model;
}

}  // namespace kiln::model
