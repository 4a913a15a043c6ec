// The GPT of nanochat V1 (ARCHITECTURE.md §5) in LibTorch: weightless RMSNorm, half-split rotary
// (base 10000), QK-norm after rotary, causal SDPA, relu^2 MLP, untied head, fp32 softcap, vocab
// padded to a multiple of 64, GQA-ready. forward() returns the mean loss or the logits.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/config.h"
#include "model/softcap_ce.h"

namespace kiln::model {

struct GPTConfig {
  int64_t n_layer = 0, n_embd = 0, n_head = 0, n_kv_head = 0, head_dim = 0;
  int64_t seq_len = 0;
  int64_t vocab_size = 0;         // real vocabulary (tokenizer)
  int64_t padded_vocab_size = 0;  // rounded up to a multiple of 64
  double softcap = 15.0;
  double rope_base = 10000.0;
  // From the run config's model section and the tokenizer's vocabulary size.
  static GPTConfig from(const kiln::ModelConfig& m, int64_t vocab_size);
};

class GPTImpl : public torch::nn::Module {
 public:
  // `device` = torch::kMeta builds the shapes without memory (parameter counts, FLOPs).
  explicit GPTImpl(const GPTConfig& cfg, torch::Device device = torch::kCPU);

  // nanochat's init: linears N(0, 1/sqrt(fan_in)*min(1, sqrt(fan_out/fan_in))), embedding
  // N(0,1), zeros for the head and both residual projections. Deterministic for a seed.
  void init_weights(uint64_t seed);

  // idx (B,T) int64. With targets (B,T) int64 (-1 = ignore): the mean loss, fp32 scalar.
  // Without: logits (B,T,vocab_size) fp32 (padding sliced off).
  torch::Tensor forward(const torch::Tensor& idx, const torch::Tensor& targets = {});
  // Per-token losses (B,T) fp32, 0 where target == -1 (for bits-per-byte).
  torch::Tensor forward_loss_per_token(const torch::Tensor& idx, const torch::Tensor& targets);

  const GPTConfig& config() const { return cfg_; }
  int64_t num_params() const;
  // PaLM-style training FLOPs per token: 6*(params - embedding) + 12*L*H*D*T.
  double estimate_flops() const;

  // Parameters by optimizer group (nanochat: Muon for block matrices, AdamW for wte / lm_head).
  std::vector<torch::Tensor> matrix_params();
  std::vector<torch::Tensor> embedding_params();
  std::vector<torch::Tensor> unembedding_params();

 private:
  torch::Tensor hidden(const torch::Tensor& idx);
  torch::Tensor logits_from_hidden(const torch::Tensor& x);
  torch::Tensor head_weight() const;
  torch::Tensor loss(const torch::Tensor& idx, const torch::Tensor& targets, LossReduction reduction);

  GPTConfig cfg_;
  // (layers and buffers are private to model/)
  struct Layers;
  std::shared_ptr<Layers> layers_;
};
TORCH_MODULE(GPT);

}  // namespace kiln::model
