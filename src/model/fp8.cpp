// Tensorwise FP8 linears; see fp8.h. The autograd function mirrors nanochat's _Float8Matmul: the
// forward quantises input and weight to e4m3 and keeps the FP8 copies (not the bf16/fp32 ones) for
// backward, which quantises the output gradient to e5m2 and runs two more scaled GEMMs.
#include "model/fp8.h"

#include <ATen/autocast_mode.h>

#include <string>

#include "core/error.h"

#ifdef KILN_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace kiln::model::fp8 {

namespace {

thread_local bool g_enabled = false;

constexpr double kEps = 1e-12;  // an all-zero tensor gets a finite scale

// finfo(dtype).max of the two float8 formats.
double fp8_max(c10::ScalarType dtype) {
  TORCH_CHECK(dtype == torch::kFloat8_e4m3fn || dtype == torch::kFloat8_e5m2, "fp8: float8_e4m3fn or float8_e5m2 only");
  return dtype == torch::kFloat8_e4m3fn ? 448.0 : 57344.0;
}

// cuBLAS's FP8 GEMM wants its second operand column-major: same shape, transposed strides.
torch::Tensor col_major(const torch::Tensor& x) { return x.t().contiguous().t(); }

// The autocast dispatch keys off while the function's own ops run: the quantisation works in
// fp32 on purpose, and autocast must not recast the matmul operands.
struct NoAutocast {
  c10::impl::ExcludeDispatchKeyGuard guard{c10::autocast_dispatch_keyset};
};

class Fp8Matmul : public torch::autograd::Function<Fp8Matmul> {
 public:
  // x2d (M, K) in the compute dtype, w (N, K) fp32 -> (M, N) in x2d's dtype.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x2d,
                               const torch::Tensor& w) {
    NoAutocast na;
    Quantized x8 = quantize(x2d, torch::kFloat8_e4m3fn), w8 = quantize(w, torch::kFloat8_e4m3fn);
    ctx->save_for_backward({x8.data, x8.inv_scale, w8.data, w8.inv_scale});
    ctx->saved_data["w_dtype"] = static_cast<int64_t>(w.scalar_type());
    // w8.data is (N, K) row-major, so its transpose is the column-major (K, N) operand at no copy.
    return scaled_mm(x8, {w8.data.t(), w8.inv_scale}, x2d.scalar_type(), /*fast_accum=*/true);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    NoAutocast na;
    const auto saved = ctx->get_saved_variables();
    const Quantized x8{saved[0], saved[1]}, w8{saved[2], saved[3]};
    const auto w_dtype = static_cast<c10::ScalarType>(ctx->saved_data["w_dtype"].toInt());
    const torch::Tensor go = grads[0].contiguous();
    const Quantized g8 = quantize(go, torch::kFloat8_e5m2);  // gradients: the wider range
    // grad_x (M, K) = go (M, N) @ w (N, K); grad_w (N, K) = go^T (N, M) @ x (M, K).
    auto grad_x = scaled_mm(g8, {col_major(w8.data), w8.inv_scale}, go.scalar_type(), false);
    auto grad_w = scaled_mm({g8.data.t().contiguous(), g8.inv_scale}, {col_major(x8.data), x8.inv_scale},
                            go.scalar_type(), false);
    return {grad_x, grad_w.to(w_dtype)};
  }
};

}  // namespace

torch::Tensor scale_from_amax(const torch::Tensor& amax, c10::ScalarType dtype) {
  return (fp8_max(dtype) / amax.to(torch::kFloat64).clamp_min(kEps)).to(torch::kFloat32);
}

torch::Tensor saturate_cast(const torch::Tensor& x, c10::ScalarType dtype) {
  const double m = fp8_max(dtype);
  return x.clamp(-m, m).to(dtype);
}

Quantized quantize(const torch::Tensor& x, c10::ScalarType dtype) {
  torch::NoGradGuard ng;
  auto xf = x.to(torch::kFloat32);
  auto scale = scale_from_amax(xf.abs().max(), dtype);
  return {saturate_cast(xf * scale, dtype), scale.reciprocal()};
}

torch::Tensor scaled_mm(const Quantized& a, const Quantized& b, c10::ScalarType out_dtype, bool fast_accum) {
  return at::_scaled_mm(a.data, b.data, a.inv_scale, b.inv_scale, std::nullopt, std::nullopt, out_dtype, fast_accum);
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w) {
  const auto dev = x.device().type();
  const bool ac = at::autocast::is_autocast_enabled(dev);
  // nanochat casts the input to the compute dtype outside the function: this cast is on the tape,
  // so the input gradient flows back in x's own dtype.
  auto xc = ac ? x.to(at::autocast::get_autocast_dtype(dev)) : x;
  auto y = Fp8Matmul::apply(xc.reshape({-1, x.size(-1)}), w);
  auto shape = x.sizes().vec();
  shape.back() = w.size(0);
  return y.view(shape);
}

bool eligible(int64_t out_features, int64_t in_features) {
  return out_features % 16 == 0 && in_features % 16 == 0 && std::min(out_features, in_features) >= 128;
}

torch::Tensor maybe_linear(const torch::Tensor& x, const torch::Tensor& w) {
  if (g_enabled && eligible(w.size(0), w.size(1)) && (x.numel() / x.size(-1)) % 16 == 0) return fp8::linear(x, w);
  return at::linear(x, w);
}

Guard::Guard(bool on) : prev_(g_enabled) { g_enabled = g_enabled || on; }
Guard::~Guard() { g_enabled = prev_; }
bool enabled() { return g_enabled; }

void check_supported(const torch::Device& device) {
  const std::string fix = "set train.fp8=false (bf16 autocast), or run on an H100/H200-class GPU";
  if (!device.is_cuda())
    throw Error("train.fp8 = true needs a CUDA GPU with FP8 matmuls (compute capability 8.9+); this run is on " +
                    device.str(),
                fix);
#ifdef KILN_WITH_CUDA
  cudaDeviceProp prop;
  const int idx = device.index() < 0 ? 0 : device.index();
  if (cudaGetDeviceProperties(&prop, idx) != cudaSuccess)
    throw Error("train.fp8 = true: cannot read the properties of GPU " + std::to_string(idx), fix);
  if (prop.major * 10 + prop.minor < 89)
    throw Error("train.fp8 = true needs compute capability 8.9+ (FP8 matmuls); GPU " + std::to_string(idx) + " (" +
                    prop.name + ") is " + std::to_string(prop.major) + "." + std::to_string(prop.minor),
                fix);
#endif
}

}  // namespace kiln::model::fp8
