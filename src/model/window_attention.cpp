// Sliding-window causal attention; see window_attention.h.
#include "model/window_attention.h"

#include <ATen/autocast_mode.h>

#include <cmath>
#include <optional>

namespace kiln::model {

namespace {

// The dtype flash-attention would see: under CUDA autocast SDPA casts to the autocast dtype, and
// so does window_attention before calling the kernel directly.
torch::ScalarType flash_dtype(const torch::Tensor& q) {
  if (q.is_cuda() && at::autocast::is_autocast_enabled(c10::DeviceType::CUDA))
    return at::autocast::get_autocast_dtype(c10::DeviceType::CUDA);
  return q.scalar_type();
}

bool flash_ok(const torch::Tensor& q) {
  const auto dt = flash_dtype(q);
  const int64_t D = q.size(-1);
  return q.is_cuda() && (dt == torch::kBFloat16 || dt == torch::kHalf) && D % 8 == 0 && D <= 256;
}

}  // namespace

const char* window_attention_path(const torch::Tensor& q, int64_t window) {
  if (window < 0 || window >= q.size(1) - 1) return "sdpa-causal";
  return flash_ok(q) ? "flash-window" : "sdpa-mask";
}

torch::Tensor window_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t window) {
  const int64_t T = q.size(1), D = q.size(3);
  const bool gqa = q.size(2) != k.size(2);
  if (window < 0 || window >= T - 1)  // every earlier key is inside the window
    return at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), {}, 0.0,
                                            /*is_causal=*/true, std::nullopt, gqa);
  if (flash_ok(q)) {
    // (B, T, H, D) is flash-attention's own layout; it takes H_kv < H (GQA) as is. Not run on a GPU
    // in this repository's CI: tests/unit/test_gpu.cpp checks it against the masked path.
    const auto dt = flash_dtype(q);
    auto out = at::_flash_attention_forward(q.to(dt).contiguous(), k.to(dt).contiguous(), v.to(dt).contiguous(),
                                            std::nullopt, std::nullopt, T, T, 0.0, /*is_causal=*/true,
                                            /*return_debug_mask=*/false, std::optional<double>(1.0 / std::sqrt(double(D))),
                                            std::optional<int64_t>(window), std::optional<int64_t>(0));
    return std::get<0>(out).transpose(1, 2);
  }
  // Key j is visible from query i when i - window <= j <= i.
  auto i = torch::arange(T, torch::TensorOptions().dtype(torch::kInt64).device(q.device()));
  auto d = i.view({T, 1}) - i.view({1, T});
  auto mask = (d >= 0).logical_and_(d <= window);
  return at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask, 0.0,
                                          /*is_causal=*/false, std::nullopt, gqa);
}

}  // namespace kiln::model
