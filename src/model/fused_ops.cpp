// Fused CPU RMSNorm and rotary; see fused_ops.h. Built with -ffp-contract=off (CMakeLists.txt):
// a fused multiply-add would round once where the ATen composite rounds twice, and rotary
// promises the composite's bits on every CPU (aarch64 contracts by default).
#include "model/fused_ops.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <optional>

#include <cmath>
#include <cstdlib>
#include <string>
#include <limits>

namespace kiln::model {

namespace {

bool cpu_f32(const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat32; }

// Rows of C floats per parallel task: enough work that a thread's start-up is paid for.
int64_t grain(int64_t C) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, C)); }


// Note [Fused RMSNorm]: forward reads each row twice (the sum of squares in double, then the
// scaled copy) and saves the output y and 1/rms r per row. Backward is
// dx = r * (g - y * mean(g * y)), the exact gradient of y = x * r (r depends on x), from y and r
// alone: one pass for the dot product, one for dx.
struct RmsNormCpu : public torch::autograd::Function<RmsNormCpu> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in, double eps) {
    const auto x = x_in.contiguous();
    const int64_t C = x.size(-1), N = x.numel() / std::max<int64_t>(1, C);
    auto y = torch::empty_like(x);
    auto r = torch::empty({N}, x.options());
    const float* xp = x.const_data_ptr<float>();
    float* yp = y.data_ptr<float>();
    float* rp = r.data_ptr<float>();
    at::parallel_for(0, N, grain(C), [&](int64_t a, int64_t b) {
      for (int64_t n = a; n < b; ++n) {
        const float* xr = xp + n * C;
        double ss = 0;
        for (int64_t i = 0; i < C; ++i) ss += double(xr[i]) * double(xr[i]);
        const float rs = static_cast<float>(1.0 / std::sqrt(ss / double(C) + eps));
        rp[n] = rs;
        float* yr = yp + n * C;
        for (int64_t i = 0; i < C; ++i) yr[i] = xr[i] * rs;
      }
    });
    ctx->save_for_backward({y, r});
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& y = saved[0];
    const auto& r = saved[1];
    const auto g = grads[0].contiguous();
    const int64_t C = y.size(-1), N = r.numel();
    auto dx = torch::empty_like(y);
    const float *gp = g.const_data_ptr<float>(), *yp = y.const_data_ptr<float>(), *rp = r.const_data_ptr<float>();
    float* dp = dx.data_ptr<float>();
    at::parallel_for(0, N, grain(C), [&](int64_t a, int64_t b) {
      for (int64_t n = a; n < b; ++n) {
        const float *gr = gp + n * C, *yr = yp + n * C;
        double dot = 0;
        for (int64_t i = 0; i < C; ++i) dot += double(gr[i]) * double(yr[i]);
        const float m = static_cast<float>(dot / double(C)), rs = rp[n];
        float* dr = dp + n * C;
        for (int64_t i = 0; i < C; ++i) dr[i] = rs * (gr[i] - yr[i] * m);
      }
    });
    return {dx, torch::Tensor()};
  }
};

// Rotates x (B, T, Hh, D; last dimension contiguous, any other strides) by the tables c, s
// (Bc, T, 1, D/2, Bc = 1 or B) into out (B, T, Hh, D) contiguous. back: rotate by minus the angle
// (the backward: a rotation's transpose).
void rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, torch::Tensor& out, bool back) {
  const int64_t B = x.size(0), T = x.size(1), Hh = x.size(2), D = x.size(3), d = D / 2;
  const int64_t xs0 = x.stride(0), xs1 = x.stride(1), xs2 = x.stride(2);
  const int64_t cs0 = cos.size(0) == 1 ? 0 : cos.stride(0), cs1 = cos.stride(1);
  const int64_t ss0 = sin.size(0) == 1 ? 0 : sin.stride(0), ss1 = sin.stride(1);
  const float* xp = x.const_data_ptr<float>();
  const float *cp = cos.const_data_ptr<float>(), *sp = sin.const_data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, B * T, grain(Hh * D), [&](int64_t a, int64_t e) {
    for (int64_t bt = a; bt < e; ++bt) {
      const int64_t b = bt / T, t = bt % T;
      const float* c = cp + b * cs0 + t * cs1;
      const float* s = sp + b * ss0 + t * ss1;
      for (int64_t h = 0; h < Hh; ++h) {
        const float* xr = xp + b * xs0 + t * xs1 + h * xs2;
        float* o = op + (bt * Hh + h) * D;
        if (!back) {  // y1 = x1*c + x2*s, y2 = x1*(-s) + x2*c: the composite's products and sums
          for (int64_t i = 0; i < d; ++i) {
            const float x1 = xr[i], x2 = xr[i + d];
            o[i] = x1 * c[i] + x2 * s[i];
            o[i + d] = x1 * -s[i] + x2 * c[i];
          }
        } else {  // g1 = y1'*c + y2'*(-s), g2 = y1'*s + y2'*c: autograd's sums through the cat
          for (int64_t i = 0; i < d; ++i) {
            const float g1 = xr[i], g2 = xr[i + d];
            o[i] = g1 * c[i] + g2 * -s[i];
            o[i + d] = g1 * s[i] + g2 * c[i];
          }
        }
      }
    }
  });
}

struct RotaryCpu : public torch::autograd::Function<RotaryCpu> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin) {
    auto out = torch::empty(x.sizes(), x.options());
    rotate(x, cos, sin, out, false);
    ctx->save_for_backward({cos, sin});
    return out;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto g = grads[0];
    if (g.stride(-1) != 1) g = g.contiguous();
    auto dx = torch::empty(g.sizes(), g.options());
    rotate(g, saved[0], saved[1], dx, true);
    return {dx, torch::Tensor(), torch::Tensor()};
  }
};

// relu(x)^2 as one autograd node. Eager ATen records relu and pow: backward runs pow's
// grad * (2 * u.pow(1)) (three passes over the MLP's widest activation) and then relu's threshold.
// Here backward is grad * (2 * r) with r = relu(x) saved: two passes, the same numbers bit for bit
// (2 * r is exact, and r is 0 wherever relu's gradient is).
struct ReluSquared : public torch::autograd::Function<ReluSquared> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    auto r = at::relu(x);
    ctx->save_for_backward({r});
    return r * r;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto r = ctx->get_saved_variables()[0];
    return {grads[0] * (r * 2)};
  }
};


}  // namespace

// A one-pass CPU kernel for relu^2 was measured 2x slower forward than ATen's relu and multiply
// (shakespeare_char: 1084 vs 527 ms per step): ATen's elementwise kernels are vectorised for the
// machine's widest SIMD, a plain loop here is not; RMSNorm and rotary win by saving whole passes.
torch::Tensor relu_squared(const torch::Tensor& x) { return ReluSquared::apply(x); }

namespace {
// The kernel choice (fused_ops.h). Set before the model runs (a checkpoint load), read on every
// call: a relaxed atomic is enough.
std::atomic<bool> g_fused_rms_norm{true};

std::optional<bool> env_fused_rms_norm() {
  static const std::optional<bool> v = []() -> std::optional<bool> {
    const char* e = std::getenv("KILN_FUSED_RMSNORM");
    if (!e || !*e) return std::nullopt;
    return std::string(e) != "0";
  }();
  return v;
}

}  // namespace

void set_fused_rms_norm(bool on) { g_fused_rms_norm.store(on, std::memory_order_relaxed); }

bool fused_rms_norm() { return env_fused_rms_norm().value_or(g_fused_rms_norm.load(std::memory_order_relaxed)); }

torch::Tensor rms_norm(const torch::Tensor& x, double eps) {
  if (fused_rms_norm() && cpu_f32(x) && x.numel() > 0) {
    const double e = eps > 0 ? eps : double(std::numeric_limits<float>::epsilon());
    return RmsNormCpu::apply(x, e);
  }
  return at::rms_norm(x, {x.size(-1)}, std::nullopt, eps > 0 ? std::optional<double>(eps) : std::nullopt);
}

torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  TORCH_CHECK(x.dim() == 4 && cos.dim() == 4 && sin.dim() == 4, "rotary: x and the tables must be 4-D");
  if (cpu_f32(x) && cpu_f32(cos) && cpu_f32(sin) && x.stride(3) == 1 && cos.stride(3) == 1 && sin.stride(3) == 1 &&
      !cos.requires_grad() && !sin.requires_grad() && x.numel() > 0)
    return RotaryCpu::apply(x, cos, sin);
  // Elsewhere the composite; split, not narrow (see Note [Split, not narrow] in gpt_parts.cpp).
  const auto halves = x.split(x.size(-1) / 2, -1);
  const auto &x1 = halves[0], &x2 = halves[1];
  return torch::cat({x1 * cos + x2 * sin, x2 * cos - x1 * sin}, -1);
}

}  // namespace kiln::model
