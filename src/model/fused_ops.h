// Fused CPU kernels for the per-token ops of nanochat's block that ATen runs as many passes:
// RMSNorm (at::rms_norm on the CPU is pow, mean, add, rsqrt, mul forward and about as many ops
// backward) and the half-split rotary embedding (four multiplies, two adds and a cat). On the CPU
// in fp32 each is one pass forward and one backward here, with its own autograd node; anywhere
// else (CUDA, bf16 under autocast) the ATen composite runs, so GPU numerics are unchanged. relu^2
// lives here too, as one autograd node over ATen's vectorised relu and multiply.
// Profiled on the shakespeare_char step (bench/train_step.sh --profile): see docs/performance.md.
#pragma once
#include <torch/torch.h>

namespace kiln::model {

// Weightless RMSNorm over the last dimension: x / sqrt(mean(x^2) + eps); eps <= 0 means
// F.rms_norm's default, the dtype's machine epsilon.
torch::Tensor rms_norm(const torch::Tensor& x, double eps);

// Which RMSNorm kernel runs on the CPU in fp32, for the whole process: the fused one (the
// default) or at::rms_norm. Their sums round differently, so a run keeps the kernel it started
// with: checkpoints record it and loading one adopts it (ckpt::adopt_saved_numerics), and a
// checkpoint from before the fused kernel, which records none, continues on at::rms_norm, with
// the figures the kiln that wrote it would give. KILN_FUSED_RMSNORM=0/1 in the environment
// overrides both (measuring, debugging).
void set_fused_rms_norm(bool on);
bool fused_rms_norm();

// nanochat's rotary: x (B, T, heads, D) split into halves x1, x2 along D;
// y1 = x1*cos + x2*sin, y2 = x1*(-sin) + x2*cos. cos, sin (B or 1, T, 1, D/2). The CPU kernel
// rounds each product and sum as the composite does (no FMA), so both give the same bits.
torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// relu(x)^2, the MLP's activation, as one autograd node (the same bits as relu then square).
torch::Tensor relu_squared(const torch::Tensor& x);

}  // namespace kiln::model
