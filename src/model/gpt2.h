// OpenAI's GPT-2 behind model::LM (lm.h): learned position embeddings, pre-LayerNorm with bias
// (eps 1e-5), GELU (tanh form), biases on q/k/v/proj and the MLP, the head tied to the token
// embedding, n_ctx positions, optional dropout. Parameter names are Hugging Face's
// (transformer.h.0.attn.c_attn.weight ...), stored (out, in) like every kiln linear; ckpt/hf_gpt2.h
// holds the one rename/transpose table to and from Hugging Face's files.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "model/lm.h"

namespace kiln::model {

struct GPT2Config {
  int64_t n_layer = 12, n_embd = 768, n_head = 12;
  int64_t n_ctx = 1024;  // learned positions (wpe rows); sequences longer than this are an error
  int64_t vocab_size = 50257;
  int64_t seq_len = 1024;  // training context (FLOP estimate)
  double dropout = 0.0;    // embedding, attention and residual dropout while training
  double layer_norm_eps = 1e-5;
  // From the run config (model.size or depth/width/n_head, model.n_ctx, model.dropout) and the
  // tokenizer's vocabulary size.
  static GPT2Config from(const kiln::ModelConfig& m, int64_t vocab_size);
};

class GPT2Impl : public LM {
 public:
  // `device` = torch::kMeta builds the shapes without memory (parameter counts, FLOPs).
  explicit GPT2Impl(const GPT2Config& cfg, torch::Device device = torch::kCPU);

  std::string arch() const override { return "gpt2"; }
  // GPT-2's init: weights N(0, 0.02), the two residual projections N(0, 0.02/sqrt(2L)), biases 0,
  // LayerNorm gains 1. Deterministic for a seed.
  void init_weights(uint64_t seed) override;

  torch::Tensor forward(const torch::Tensor& idx, const torch::Tensor& targets = {}) override;
  torch::Tensor forward_loss_per_token(const torch::Tensor& idx, const torch::Tensor& targets) override;
  torch::Tensor forward_cached(const torch::Tensor& idx, const std::vector<int64_t>& n_tokens,
                               const std::vector<int64_t>& slots, KVCache& cache, bool all_logits = false) override;
  int64_t max_positions() const override { return cfg_.n_ctx; }
  CacheShape cache_shape() const override { return {cfg_.n_layer, cfg_.n_head, cfg_.n_embd / cfg_.n_head}; }

  int64_t vocab_size() const override { return cfg_.vocab_size; }
  int64_t width() const override { return cfg_.n_embd; }
  int64_t num_params() const override;  // wte once (the head is the same tensor)
  // 6*(params - position embedding) + 12*L*C*T: the tied head's matmul counts through wte.
  double estimate_flops() const override;
  // "matrix": the four 2-D weights per block; "embedding": wte (also the head) and wpe;
  // "vector": biases and LayerNorm parameters (no weight decay).
  std::vector<ParamGroup> param_groups() override;

  const GPT2Config& config() const { return cfg_; }

 private:
  // Final-LayerNormed hidden states (B, T, C) of the blocks over token + position embeddings.
  // `attend(layer, q, k, v)` ((B, T, H, D) each) returns (B, H, T, D).
  template <class Attend>
  torch::Tensor run(const torch::Tensor& idx, const torch::Tensor& pos, Attend&& attend);
  torch::Tensor hidden(const torch::Tensor& idx);
  torch::Tensor logits(const torch::Tensor& x) const;
  torch::Tensor loss(const torch::Tensor& idx, const torch::Tensor& targets, bool per_token);

  GPT2Config cfg_;
  struct Layers;
  std::shared_ptr<Layers> layers_;
};

}  // namespace kiln::model
