// nanochat's current GPT (model.arch nanochat2; nanochat commit 92d63d4, gpt.py) in LibTorch:
// V1's block (rotary, QK-norm, relu^2, untied head, softcap) plus sliding-window attention by a
// per-layer pattern, value embeddings with input-dependent sigmoid gates on alternating layers,
// per-layer residual and x0 lambdas, smear (the previous token's embedding mixed in), backout
// (the mid-layer residual subtracted before the head), QK-norm then a 1.2 scale, RoPE base 100K.
// One of the architectures behind model::LM (lm.h).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "model/gpt.h"
#include "model/lm.h"

namespace kiln::model {

// V1's shape fields (model/gpt.h; rope_base from the config, 100K by default for nanochat2) and
// the per-layer windows: how many earlier tokens a query sees besides itself (flash-attention's
// window_size_left), seq_len for L layers, the short window for S layers.
struct GPTv2Config : GPTConfig {
  std::vector<int64_t> windows;
  static GPTv2Config from(const kiln::ModelConfig& m, int64_t vocab_size);
};

// nanochat's per-layer windows: `pattern` (S/L) tiled over n_layer, the last layer L; L = seq_len,
// S = short_window or, when 0, ceil(seq_len/4/128)*128 (nanochat's rule, FA3's tile).
std::vector<int64_t> window_sizes(const std::string& pattern, int64_t n_layer, int64_t seq_len, int64_t short_window);
// nanochat's has_ve: layer i has a value embedding when i % 2 == (n_layer - 1) % 2 (the last always).
bool has_value_embedding(int64_t layer, int64_t n_layer);

class GPTv2Impl : public LM {
 public:
  // `device` = torch::kMeta builds the shapes without memory (parameter counts, FLOPs).
  explicit GPTv2Impl(const GPTv2Config& cfg, torch::Device device = torch::kCPU);

  // nanochat's init_weights: wte N(0, 0.8), lm_head N(0, 0.001), q/k/v and value embeddings
  // U(+-sqrt(3/C)), c_fc U(+-0.4 sqrt(3/C)), projections 0, resid lambdas 1.15 -> 1.05 and x0 lambdas
  // 0.20 -> 0.05 over depth, smear 0, backout 0.2, gates U(0, 0.02). Deterministic for a seed.
  void init_weights(uint64_t seed) override;
  std::string arch() const override { return "nanochat2"; }

  torch::Tensor forward(const torch::Tensor& idx, const torch::Tensor& targets = {}) override;
  torch::Tensor forward_loss_per_token(const torch::Tensor& idx, const torch::Tensor& targets) override;
  // A windowed layer reads only the keys in its window (kv_cache.h); smear reads the previous
  // token of each row from the cache's token history, so prefill, decode and ragged rows all equal
  // the uncached forward.
  torch::Tensor forward_cached(const torch::Tensor& idx, const std::vector<int64_t>& n_tokens,
                               const std::vector<int64_t>& slots, KVCache& cache, bool all_logits = false) override;
  int64_t max_positions() const override;
  CacheShape cache_shape() const override { return {cfg_.n_layer, cfg_.n_kv_head, cfg_.head_dim}; }

  const GPTv2Config& config() const { return cfg_; }
  int64_t vocab_size() const override { return cfg_.vocab_size; }
  int64_t width() const override { return cfg_.n_embd; }
  int64_t num_params() const override;
  // nanochat's estimate_flops: 6 * (weights of every matmul, the head included) + per layer
  // 12 * H * D * min(window, seq_len).
  double estimate_flops() const override;
  // nanochat's num_scaling_params: wte, value_embeds, lm_head, transformer_matrices, scalars, total.
  std::vector<std::pair<std::string, int64_t>> scaling_params() const override;
  // What nanochat's scaling rules count (base_train.py's get_scaling_params, dev/LOG.md Jan 27):
  // transformer_matrices + lm_head; not wte, value embeddings or scalars.
  int64_t num_scaling_params() const override;

  // nanochat's setup_optimizer groups: "matrix" (everything under transformer.h, the value-embedding
  // gates included), "embedding" (wte), "value_embedding", "unembedding" (lm_head),
  // "resid_lambda", "x0_lambda", "smear" (smear_gate, smear_lambda, backout_lambda).
  std::vector<ParamGroup> param_groups() override;

 private:
  using Attend = std::function<torch::Tensor(size_t, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)>;
  // x: the smeared, normed embedding (B, T, C); idx for the value embeddings. `attend(layer, q, k, v)`
  // ((B, T, heads, D) each) returns (B, H, T, D). Returns the normed final residual (B, T, C).
  torch::Tensor run_blocks(torch::Tensor x, const torch::Tensor& idx, torch::Tensor cos, torch::Tensor sin,
                           bool fused_qkv, const Attend& attend);
  // norm(wte(idx)) with smear from prev_x, the normed embedding of each position's previous token
  // (undefined: the row's own x shifted by one, position 0 unsmeared; has_prev masks rows without one).
  torch::Tensor embed(const torch::Tensor& idx, const torch::Tensor& prev_idx);
  torch::Tensor hidden(const torch::Tensor& idx);
  torch::Tensor head_weight() const;

  GPTv2Config cfg_;
  struct Layers;
  std::shared_ptr<Layers> layers_;
};
TORCH_MODULE(GPTv2);

}  // namespace kiln::model
