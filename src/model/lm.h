// model::LM — the one model interface (docs/architecture.md, "The parts"). The Trainer, optimizers, engine,
// checkpoints and eval see only this; nanochat's GPT (model/gpt.h) and GPT-2 (model/gpt2.h)
// implement it. make_model() builds the architecture a config names (model.arch).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"

namespace kiln::model {

class KVCache;  // model/kv_cache.h

// The cache geometry: per layer one key and one value tensor (slots, T, n_kv_head, head_dim).
struct CacheShape {
  int64_t n_layer = 0, n_kv_head = 0, head_dim = 0;
};

// Parameters grouped by what they are; optim::make_optimizers decides how each role is stepped.
// Roles: "matrix" (block matrices), "embedding" (token / position embeddings), "unembedding"
// (an untied head), "vector" (biases, norm gains); nanochat2 adds "value_embedding",
// "resid_lambda", "x0_lambda" and "smear" (nanochat's optimizer groups). A tied weight appears
// once, in one group.
struct ParamGroup {
  std::string role;
  std::vector<std::string> names;  // as in named_parameters(), same order as params
  std::vector<torch::Tensor> params;
};

class LM : public torch::nn::Module {
 public:
  ~LM() override = default;
  // "nanochat", "nanochat2" or "gpt2" (meta.json and messages).
  virtual std::string arch() const = 0;
  // The architecture's own init, deterministic for a seed.
  virtual void init_weights(uint64_t seed) = 0;

  // idx (B,T) int64. With targets (B,T) int64 (-1 = ignore): the mean loss, fp32 scalar.
  // Without: logits (B,T,vocab_size) fp32.
  virtual torch::Tensor forward(const torch::Tensor& idx, const torch::Tensor& targets = {}) = 0;
  // Per-token losses (B,T) fp32, 0 where target == -1 (for bits-per-byte).
  virtual torch::Tensor forward_loss_per_token(const torch::Tensor& idx, const torch::Tensor& targets) = 0;
  // Inference with the KV cache (prefill and decode alike). idx (B, T) int64: row b feeds its
  // first n_tokens[b] tokens into cache slot slots[b] at positions cache.length(slot) onward; the
  // slot's length then grows by n_tokens[b]. Returns fp32 logits (B, vocab_size) at each row's
  // last fed token, or with all_logits (B, T, vocab_size). Throws kiln::Error past max_positions().
  virtual torch::Tensor forward_cached(const torch::Tensor& idx, const std::vector<int64_t>& n_tokens,
                                       const std::vector<int64_t>& slots, KVCache& cache,
                                       bool all_logits = false) = 0;
  // The longest sequence forward_cached accepts (nanochat: the rotary table; GPT-2: n_ctx).
  virtual int64_t max_positions() const = 0;
  virtual CacheShape cache_shape() const = 0;

  virtual int64_t vocab_size() const = 0;  // the tokenizer's (logits' last dimension)
  virtual int64_t width() const = 0;       // n_embd
  virtual int64_t num_params() const = 0;  // a tied weight counted once
  // The parameters nanochat's scaling rules count (train.target_param_data_ratio, the auto batch
  // size): nanochat's current model counts its transformer matrices and lm_head
  // (num_scaling_params); V1 counted every parameter, which is this default.
  virtual int64_t num_scaling_params() const { return num_params(); }
  // Training FLOPs per token (PaLM-style 6N + attention), for MFU.
  virtual double estimate_flops() const = 0;
  // Parameter counts by kind for scaling laws (nanochat's num_scaling_params: "wte",
  // "value_embeds", "lm_head", "transformer_matrices", "scalars", "total"); an architecture
  // without that accounting reports only "total".
  virtual std::vector<std::pair<std::string, int64_t>> scaling_params() const { return {{"total", num_params()}}; }
  // Every trainable parameter exactly once, grouped by role.
  virtual std::vector<ParamGroup> param_groups() = 0;
};

using Model = std::shared_ptr<LM>;

// Whether make_model initialises the weights: Uninitialised leaves them unset, for a caller that
// copies a checkpoint's in (a d20's init is seconds of start-up that a load would throw away).
enum class Weights { Initialised, Uninitialised };

// The model a config describes (model.arch), initialised with init_weights(seed), on `device`.
// vocab_size: the tokenizer's.
Model make_model(const kiln::ModelConfig& m, int64_t vocab_size, uint64_t seed, torch::Device device,
                 Weights weights = Weights::Initialised);
// The logits' vocabulary: model.vocab_size when set (at least the tokenizer's), else the
// tokenizer's. Throws kiln::Error when neither is known or the config's is too small.
int64_t resolve_vocab_size(const kiln::ModelConfig& m, int64_t vocab_size);

}  // namespace kiln::model
