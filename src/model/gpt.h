// The GPT of nanochat V1 in LibTorch: weightless RMSNorm, half-split rotary
// (base 10000), QK-norm after rotary, causal SDPA, relu^2 MLP, untied head, fp32 softcap, vocab
// padded to a multiple of 64, GQA-ready. forward() returns the mean loss or the logits. One of
// the architectures behind model::LM (lm.h); code outside model/ and tests holds a model::Model.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "model/lm.h"
#include "model/softcap_ce.h"

namespace kiln::model {

struct GPTConfig {
  int64_t n_layer = 0, n_embd = 0, n_head = 0, n_kv_head = 0, head_dim = 0;
  int64_t seq_len = 0;
  int64_t vocab_size = 0;         // real vocabulary (tokenizer)
  int64_t padded_vocab_size = 0;  // rounded up to a multiple of 64
  double softcap = 15.0;
  double rope_base = 10000.0;
  double norm_eps = 0.0;  // 0: F.rms_norm's default, the dtype's machine epsilon
  // From the run config's model section and the tokenizer's vocabulary size.
  static GPTConfig from(const kiln::ModelConfig& m, int64_t vocab_size);
};

class GPTImpl : public LM {
 public:
  // `device` = torch::kMeta builds the shapes without memory (parameter counts, FLOPs).
  explicit GPTImpl(const GPTConfig& cfg, torch::Device device = torch::kCPU);

  // nanochat's init: linears N(0, 1/sqrt(fan_in)*min(1, sqrt(fan_out/fan_in))), embedding
  // N(0,1), zeros for the head and both residual projections. Deterministic for a seed.
  void init_weights(uint64_t seed) override;
  std::string arch() const override { return "nanochat"; }

  // idx (B,T) int64. With targets (B,T) int64 (-1 = ignore): the mean loss, fp32 scalar.
  // Without: logits (B,T,vocab_size) fp32 (padding sliced off).
  torch::Tensor forward(const torch::Tensor& idx, const torch::Tensor& targets = {}) override;
  // Per-token losses (B,T) fp32, 0 where target == -1 (for bits-per-byte).
  torch::Tensor forward_loss_per_token(const torch::Tensor& idx, const torch::Tensor& targets) override;

  // Inference with the KV cache (prefill and decode alike). idx (B, T) int64: row b feeds its
  // first n_tokens[b] tokens (the rest is padding) into cache slot slots[b], at positions
  // cache.length(slot) onward; the slot's length then grows by n_tokens[b]. Attention covers the
  // slot's cached keys plus the causal part of the chunk. Returns fp32 logits (B, vocab_size) at
  // each row's last fed token, or with all_logits (B, T, vocab_size) at every position. Throws
  // kiln::Error when a row would run past the rotary table (10 x seq_len).
  torch::Tensor forward_cached(const torch::Tensor& idx, const std::vector<int64_t>& n_tokens,
                               const std::vector<int64_t>& slots, KVCache& cache, bool all_logits = false) override;
  // The longest sequence forward_cached accepts (the rotary table's length, 10 x seq_len).
  int64_t max_positions() const override;
  CacheShape cache_shape() const override { return {cfg_.n_layer, cfg_.n_kv_head, cfg_.head_dim}; }

  const GPTConfig& config() const { return cfg_; }
  int64_t vocab_size() const override { return cfg_.vocab_size; }
  int64_t width() const override { return cfg_.n_embd; }
  int64_t num_params() const override;
  // PaLM-style training FLOPs per token: 6*(params - embedding) + 12*L*H*D*T.
  double estimate_flops() const override;

  // Roles "matrix" (every block matrix), "unembedding" (lm_head), "embedding" (wte), in that
  // order (the order of nanochat's optimizer groups, which checkpoints of optimizer state follow).
  std::vector<ParamGroup> param_groups() override;
  // The same tensors, by role.
  std::vector<torch::Tensor> matrix_params();
  std::vector<torch::Tensor> embedding_params();
  std::vector<torch::Tensor> unembedding_params();

 private:
  torch::Tensor hidden(const torch::Tensor& idx);
  // The transformer blocks and final norm over embedded x (B, T, C) with rotary tables cos/sin
  // broadcastable to (B, T, 1, D/2). `attend(layer, q, k, v)` ((B, T, heads, D) each) returns the
  // attention output (B, H, T, D); `fused_qkv` chooses one concatenated GEMM (training) or three.
  torch::Tensor run_blocks(torch::Tensor x, torch::Tensor cos, torch::Tensor sin, bool fused_qkv,
                           const std::function<torch::Tensor(size_t, const torch::Tensor&, const torch::Tensor&,
                                                             const torch::Tensor&)>& attend);
  torch::Tensor logits_from_hidden(const torch::Tensor& x);
  torch::Tensor head_weight() const;
  torch::Tensor loss(const torch::Tensor& idx, const torch::Tensor& targets, LossReduction reduction);

  GPTConfig cfg_;
  // (layers and buffers are private to model/)
  // Layer i's q|k|v weight as one (H + 2 H_kv) * D x C matrix for inference; see Note [Stored qkv].
  torch::Tensor stored_qkv(size_t i);
  struct Layers;
  std::shared_ptr<Layers> layers_;
};
TORCH_MODULE(GPT);

}  // namespace kiln::model
