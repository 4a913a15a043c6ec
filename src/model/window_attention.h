// Causal attention with a sliding window (flash-attention's window_size = (window, 0): a query at
// position i sees keys i-window..i), for the training forward of model.arch nanochat2. On CUDA in
// bf16/fp16 it runs flash-attention's kernel with the window (at::_flash_attention_forward, which
// has autograd), so no T x T mask exists; elsewhere SDPA with a boolean band mask.
#pragma once
#include <torch/torch.h>

namespace kiln::model {

// Which kernel window_attention runs for these inputs: "sdpa-causal" (the window covers the whole
// sequence), "flash-window" or "sdpa-mask".
const char* window_attention_path(const torch::Tensor& q, int64_t window);
// q (B, T, H, D), k and v (B, T, H_kv, D) with H_kv dividing H. window < 0: plain causal.
// Returns (B, H, T, D).
torch::Tensor window_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t window);

}  // namespace kiln::model
