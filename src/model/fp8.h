// FP8 training of the model's linears (train.fp8), as nanochat's fp8.py (commit 92d63d4): one
// scale per tensor computed from its absolute maximum each call ("tensorwise", dynamic), inputs
// and weights in float8_e4m3fn, output gradients in float8_e5m2, and the three GEMMs of a linear
// (forward, input gradient, weight gradient) on at::_scaled_mm (cuBLAS on Hopper). Weights stay
// fp32; only the matmuls run in FP8. model::GPT routes its eligible linears here while a Guard is
// alive; the Trainer opens one around each training forward (evaluation stays bf16, as nanochat's
// disable_fp8). at::_scaled_mm also has a CPU kernel, so the same code runs in the unit tests.
#pragma once
#include <torch/torch.h>

namespace kiln::model::fp8 {

// A tensor quantised with one scale: data = saturate(x * scale) in a float8 dtype, and
// inv_scale = 1 / scale (fp32, 0-dim): what _scaled_mm multiplies the products back by.
struct Quantized {
  torch::Tensor data, inv_scale;
};

// scale = finfo(dtype).max / max(amax, 1e-12), divided in double and returned as fp32 (0-dim), as
// nanochat and torchao do so that the scale does not depend on how the division is compiled.
torch::Tensor scale_from_amax(const torch::Tensor& amax, c10::ScalarType dtype);

// x (fp32) clamped to +-finfo(dtype).max, then cast: a plain cast of an out-of-range value gives
// NaN (e4m3fn) or Inf (e5m2) instead of the largest finite value.
torch::Tensor saturate_cast(const torch::Tensor& x, c10::ScalarType dtype);

// Tensorwise quantisation of x (any float dtype) to float8_e4m3fn or float8_e5m2: x * scale in
// fp32 (|x| = amax lands on finfo.max), then saturate_cast.
Quantized quantize(const torch::Tensor& x, c10::ScalarType dtype);

// (a.data * a.inv_scale) @ (b.data * b.inv_scale) in out_dtype through at::_scaled_mm: a (M, K)
// row-major, b (K, N) column-major (cuBLAS's layout rule; b = w.t() of a row-major w already is).
// fast_accum: the forward's faster, less exact accumulation (nanochat: forward only).
torch::Tensor scaled_mm(const Quantized& a, const Quantized& b, c10::ScalarType out_dtype, bool fast_accum);

// y = x @ w^T with its three GEMMs in FP8. x (..., K) is first cast to the compute dtype (the
// autocast dtype when autocast is on for x's device, else x's own); y has that dtype. w (N, K) is
// the fp32 master weight; its gradient comes back in w's dtype.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w);

// nanochat's filter (base_train.py): both dimensions multiples of 16 (the FP8 GEMM's rule) and
// the smaller one at least 128 (smaller GEMMs gain nothing).
bool eligible(int64_t out_features, int64_t in_features);

// The model's linear: fp8::linear while a Guard is on and the shapes allow it (eligible weight and
// a multiple of 16 rows: the weight gradient's GEMM contracts over the rows), else at::linear.
torch::Tensor maybe_linear(const torch::Tensor& x, const torch::Tensor& w);

// While a Guard(true) is alive on this thread, maybe_linear uses FP8. Nests; Guard(false) is a no-op.
class Guard {
 public:
  explicit Guard(bool on);
  ~Guard();
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

 private:
  bool prev_;
};
bool enabled();

// train.fp8 = true on `device`: throws kiln::Error (naming the key and the device) unless it is a
// CUDA GPU of compute capability 8.9 or newer (Ada, Hopper, Blackwell), the first with FP8 GEMMs.
// kiln refuses rather than silently training in bf16 (nanochat warns and ignores the flag).
void check_supported(const torch::Device& device);

}  // namespace kiln::model::fp8
