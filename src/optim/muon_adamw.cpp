// nanochat's fused Muon and AdamW steps, op for op (see muon_adamw.h). The hyperparameters go
// through 0-D fp32 tensors exactly as optim.py fills them (`1 - beta` is then an fp32
// subtraction, `lr * wd` an fp32 product), so the rounding is the reference's and not that of
// double scalars. tests/reference/muon_adamw_ref.py is the transcription the tests compare with.
#include "optim/muon_adamw.h"

#include <algorithm>
#include <cmath>

namespace kiln::optim {

const std::array<std::array<double, 3>, 5> kPolarExpressCoeffs = {{
    {8.156554524902461, -22.48329292557795, 15.878769915207462},
    {4.042929935166739, -2.808917465908714, 0.5000178451051316},
    {3.8916678022926607, -2.772484153217685, 0.5060648178503393},
    {3.285753657755655, -2.3681294933425376, 0.46449024233003106},
    {2.3465413258596377, -1.7097828382687081, 0.42323551169305323},
}};

namespace {
// Python's Tensor.norm(dim=...) (p='fro') is linalg.vector_norm(x, 2, dim).
torch::Tensor norm2(const torch::Tensor& x, std::vector<int64_t> dims) {
  return at::linalg_vector_norm(x, 2, dims, /*keepdim=*/true);
}
torch::Tensor f32(double v) { return torch::scalar_tensor(v, torch::kFloat32); }
// A 0-D fp32 result as the scalar argument a kernel takes (exact: a float is a double): lerp_ on
// CUDA wants its weight as a Scalar, not a CPU tensor.
double value(const torch::Tensor& t) { return t.item<double>(); }
}  // namespace

torch::Tensor polar_express(torch::Tensor X, int64_t steps) {
  X = X / (norm2(X, {-2, -1}) * 1.01 + 1e-6);
  const bool tall = X.size(-2) > X.size(-1);
  const int64_t n = std::min<int64_t>(steps, int64_t(kPolarExpressCoeffs.size()));
  for (int64_t i = 0; i < n; ++i) {
    const auto& [a, b, c] = kPolarExpressCoeffs[size_t(i)];
    if (tall) {  // iterate on the small Gram matrix X^T X
      auto A = at::matmul(X.mT(), X);
      auto B = A * b + at::matmul(A, A) * c;
      X = X * a + at::matmul(X, B);
    } else {
      auto A = at::matmul(X, X.mT());
      auto B = A * b + at::matmul(A, A) * c;
      X = X * a + at::matmul(B, X);
    }
  }
  return X;
}

std::vector<int64_t> normuon_second_moment_shape(const torch::Tensor& p) {
  return p.size(-2) >= p.size(-1) ? std::vector<int64_t>{p.size(-2), 1} : std::vector<int64_t>{1, p.size(-1)};
}

void normuon_update(torch::Tensor& p, torch::Tensor& grad, torch::Tensor& buf, torch::Tensor& buf2,
                    double momentum, double lr, double weight_decay, double beta2, int64_t ns_steps) {
  const auto momentum_t = f32(momentum), lr_t = f32(lr), wd_t = f32(weight_decay), beta2_t = f32(beta2);
  // Nesterov momentum (the look-ahead is written into the grad's storage, as nanochat)
  buf.lerp_(grad, value(torch::rsub(momentum_t, 1)));
  auto g = grad.lerp_(buf, value(momentum_t));
  auto X = g.is_cuda() ? g.to(torch::kBFloat16) : g;
  // MuonEq: every row rescaled to the mean row norm
  auto target = norm2(X.to(torch::kFloat32), {-2, -1}) / std::sqrt(double(X.size(-2)));
  auto row_norm = norm2(X.to(torch::kFloat32), {-1}).clamp_min(1e-6);
  X = X * (target / row_norm).to(X.scalar_type());
  X = polar_express(X, ns_steps);
  g = X.to(p.scalar_type());
  // Muon+: snap the Frobenius norm to sqrt(min(m, n)); Python's `float / tensor` is reciprocal * float
  const double target_norm = std::sqrt(double(std::min(g.size(-2), g.size(-1))));
  auto current_norm = norm2(g.to(torch::kFloat32), {-2, -1}).clamp_min(1e-6);
  g = g * (current_norm.reciprocal() * target_norm).to(g.scalar_type());
  // NorMuon: per-row (or per-column) second moment, total norm preserved
  const int64_t red_dim = p.size(-2) >= p.size(-1) ? -1 : -2;
  const int64_t red_size = g.size(red_dim);
  auto v_mean = g.to(torch::kFloat32).square().mean({red_dim}, true);
  auto v_norm = (v_mean.sum({-2, -1}, true) * red_size).sqrt();
  buf2.lerp_(v_mean.to(buf2.scalar_type()), value(torch::rsub(beta2_t.to(g.scalar_type()), 1)));
  auto step_size = buf2.clamp_min(1e-10).rsqrt();
  auto scaled_sq_sum = (v_mean * red_size) * step_size.to(torch::kFloat32).square();
  auto v_norm_new = scaled_sq_sum.sum({-2, -1}, true).sqrt();
  auto final_scale = step_size * (v_norm / v_norm_new.clamp_min(1e-10));
  g = g * final_scale.to(g.scalar_type());
  // Cautious weight decay: decay only where the update and the weight agree in sign
  auto mask = (g * p) >= 0;
  p.sub_(lr_t * g + lr_t * wd_t * p * mask);
}

void adamw_fused_update(torch::Tensor& p, const torch::Tensor& grad, torch::Tensor& exp_avg, torch::Tensor& exp_avg_sq,
                        int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay) {
  const auto step_t = f32(double(step)), lr_t = f32(lr), beta1_t = f32(beta1), beta2_t = f32(beta2),
             eps_t = f32(eps), wd_t = f32(weight_decay);
  // bf16 parameters (if any) do their math in fp32; for fp32 these are the tensors themselves
  auto p32 = p.to(torch::kFloat32), m32 = exp_avg.to(torch::kFloat32), v32 = exp_avg_sq.to(torch::kFloat32);
  auto g32 = grad.to(torch::kFloat32);
  p32.mul_(torch::rsub(lr_t * wd_t, 1));
  m32.lerp_(g32, value(torch::rsub(beta1_t, 1)));
  v32.lerp_(g32.square(), value(torch::rsub(beta2_t, 1)));
  auto bias1 = torch::rsub(beta1_t.pow(step_t), 1);
  auto bias2 = torch::rsub(beta2_t.pow(step_t), 1);
  auto denom = (v32 / bias2).sqrt() + eps_t;
  auto step_size = lr_t / bias1;
  p32.add_(m32 / denom, -value(step_size));
  if (!p32.is_same(p)) p.copy_(p32);
  if (!m32.is_same(exp_avg)) exp_avg.copy_(m32);
  if (!v32.is_same(exp_avg_sq)) exp_avg_sq.copy_(v32);
}

}  // namespace kiln::optim
