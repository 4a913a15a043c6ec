// Muon, AdamW and the schedules. The arithmetic mirrors nanochat's muon.py and torch.optim.AdamW
// (single-tensor path) op for op, so tests/reference/optim_ref.py can check one step each; all
// state (buffers, step counters, lr, momentum) round-trips through state()/load_state().
#include "optim/optimizers.h"

#include <cmath>

#include "core/error.h"

namespace kiln::optim {

namespace {

// Newton-Schulz quintic iteration towards the orthogonal polar factor of g (nanochat's
// zeropower_via_newtonschulz5). bf16 on CUDA (as nanochat), fp32 on the CPU (bf16 matmuls are
// slow there and we want the exactness).
torch::Tensor newton_schulz5(const torch::Tensor& g, int64_t steps) {
  constexpr double a = 3.4445, b = -4.7750, c = 2.0315;
  auto x = g.is_cuda() ? g.to(torch::kBFloat16) : g;
  const bool tall = g.size(-2) > g.size(-1);
  if (tall) x = x.mT();
  x = x / (x.norm(2, {-2, -1}, /*keepdim=*/true) + 1e-7);  // spectral norm <= 1
  for (int64_t i = 0; i < steps; ++i) {
    auto A = at::matmul(x, x.mT());
    auto B = at::addmm(A, A, A, /*beta=*/b, /*alpha=*/c);  // b*A + c*A@A in one GEMM
    x = at::addmm(x, B, x, /*beta=*/a, /*alpha=*/1.0);    // a*x + B@x
  }
  return tall ? x.mT() : x;
}

torch::Tensor scalar_f64(double v) { return torch::tensor(v, torch::kFloat64); }
torch::Tensor scalar_i64(int64_t v) { return torch::tensor(v, torch::kInt64); }

const torch::Tensor& need(const std::map<std::string, torch::Tensor>& s, const std::string& key) {
  auto it = s.find(key);
  if (it == s.end())
    throw Error("optimizer state has no '" + key + "'", "the state was saved for another model or optimizer");
  return it->second;
}

// The state must have been saved for an optimizer over the same number of parameters.
void check_num_params(const std::map<std::string, torch::Tensor>& s, const std::string& prefix, const char* what,
                      size_t have) {
  const int64_t n = need(s, prefix + "num_params").item<int64_t>();
  if (n != int64_t(have))
    throw Error(std::string(what) + " state holds " + std::to_string(n) + " parameters but the optimizer has " +
                    std::to_string(have),
                "the state was saved for another model");
}

// Restores a buffer for `param` from the state map (copy to param's device/dtype), checking shape.
torch::Tensor load_buffer(const std::map<std::string, torch::Tensor>& s, const std::string& key,
                          const torch::Tensor& param) {
  const auto& t = need(s, key);
  if (t.sizes() != param.sizes())
    throw Error("optimizer state '" + key + "' has shape " + c10::str(t.sizes()) + " but the parameter has " +
                    c10::str(param.sizes()),
                "the state was saved for another model");
  return t.to(param.device(), param.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace

// ---- Muon --------------------------------------------------------------------------------------

struct Muon::Impl {
  std::vector<torch::Tensor> params, bufs;  // bufs[i] undefined until params[i] first has a grad
  double lr, momentum;
  int64_t ns_steps, steps = 0;
};

Muon::Muon(std::vector<torch::Tensor> params, double lr, double momentum, int64_t ns_steps)
    : impl_(std::make_shared<Impl>()) {
  for (const auto& p : params) TORCH_CHECK(p.dim() == 2, "Muon takes 2-D matrices, got ", p.sizes());
  impl_->bufs.resize(params.size());
  impl_->params = std::move(params);
  impl_->lr = lr;
  impl_->momentum = momentum;
  impl_->ns_steps = ns_steps;
}

void Muon::step() {
  torch::NoGradGuard ng;
  auto& s = *impl_;
  const double m = s.momentum;
  for (size_t i = 0; i < s.params.size(); ++i) {
    auto& p = s.params[i];
    auto g = p.mutable_grad();
    if (!g.defined()) continue;
    if (!s.bufs[i].defined()) s.bufs[i] = torch::zeros_like(g);
    auto& buf = s.bufs[i];
    buf.lerp_(g, 1.0 - m);
    g.lerp_(buf, m);  // Nesterov: look ahead along the momentum (in the grad's storage, as nanochat)
    auto u = newton_schulz5(g, s.ns_steps);
    const double scale = std::sqrt(std::max(1.0, double(p.size(-2)) / double(p.size(-1))));
    p.add_(u, -s.lr * scale);
  }
  ++s.steps;
}

void Muon::zero_grad() {
  for (auto& p : impl_->params)
    if (p.mutable_grad().defined()) p.mutable_grad() = torch::Tensor();
}
void Muon::set_lr(double lr) { impl_->lr = lr; }
void Muon::set_momentum(double m) { impl_->momentum = m; }
double Muon::lr() const { return impl_->lr; }
double Muon::momentum() const { return impl_->momentum; }
int64_t Muon::steps() const { return impl_->steps; }
const std::vector<torch::Tensor>& Muon::params() const { return impl_->params; }

kiln::model::NamedTensors Muon::state(const std::string& prefix) const {
  const auto& s = *impl_;
  kiln::model::NamedTensors out{{prefix + "lr", scalar_f64(s.lr)},
                                {prefix + "momentum", scalar_f64(s.momentum)},
                                {prefix + "steps", scalar_i64(s.steps)},
                                {prefix + "num_params", scalar_i64(int64_t(s.params.size()))}};
  for (size_t i = 0; i < s.params.size(); ++i)
    if (s.bufs[i].defined()) out.emplace_back(prefix + std::to_string(i) + ".momentum_buffer", s.bufs[i]);
  return out;
}

void Muon::load_state(const std::map<std::string, torch::Tensor>& state, const std::string& prefix) {
  auto& s = *impl_;
  check_num_params(state, prefix, "Muon", s.params.size());
  s.lr = need(state, prefix + "lr").item<double>();
  s.momentum = need(state, prefix + "momentum").item<double>();
  s.steps = need(state, prefix + "steps").item<int64_t>();
  for (size_t i = 0; i < s.params.size(); ++i) {
    const auto key = prefix + std::to_string(i) + ".momentum_buffer";
    s.bufs[i] = state.count(key) ? load_buffer(state, key, s.params[i]) : torch::Tensor();
  }
}

// ---- AdamW -------------------------------------------------------------------------------------

struct AdamW::Impl {
  std::vector<Group> groups;
  std::vector<double> base_lrs;
  double beta1, beta2, eps, weight_decay, multiplier = 1.0;
  // Per parameter, flattened over groups in order (as torch: one step counter per parameter).
  std::vector<torch::Tensor> exp_avg, exp_avg_sq;
  std::vector<int64_t> step;
};

AdamW::AdamW(std::vector<Group> groups, double beta1, double beta2, double eps, double weight_decay)
    : impl_(std::make_shared<Impl>()) {
  auto& s = *impl_;
  size_t n = 0;
  for (const auto& g : groups) {
    s.base_lrs.push_back(g.lr);
    n += g.params.size();
  }
  s.groups = std::move(groups);
  s.beta1 = beta1;
  s.beta2 = beta2;
  s.eps = eps;
  s.weight_decay = weight_decay;
  s.exp_avg.resize(n);
  s.exp_avg_sq.resize(n);
  s.step.assign(n, 0);
}

void AdamW::step() {
  torch::NoGradGuard ng;
  auto& s = *impl_;
  size_t i = 0;
  for (auto& group : s.groups) {
    const double lr = group.lr, wd = group.weight_decay >= 0 ? group.weight_decay : s.weight_decay;
    for (auto& p : group.params) {
      const size_t k = i++;
      const auto& g = p.grad();
      if (!g.defined()) continue;
      if (!s.exp_avg[k].defined()) {
        s.exp_avg[k] = torch::zeros_like(p);
        s.exp_avg_sq[k] = torch::zeros_like(p);
      }
      const int64_t t = ++s.step[k];
      if (wd != 0.0) p.mul_(1.0 - lr * wd);  // mul_(1.0) would be a no-op
      s.exp_avg[k].lerp_(g, 1.0 - s.beta1);
      s.exp_avg_sq[k].mul_(s.beta2).addcmul_(g, g, 1.0 - s.beta2);
      // Same double arithmetic as torch.optim.adamw._single_tensor_adamw.
      const double bc1 = 1.0 - std::pow(s.beta1, double(t));
      const double bc2 = 1.0 - std::pow(s.beta2, double(t));
      const double step_size = lr / bc1;
      const double bc2_sqrt = std::pow(bc2, 0.5);
      auto denom = (s.exp_avg_sq[k].sqrt() / bc2_sqrt).add_(s.eps);
      p.addcdiv_(s.exp_avg[k], denom, -step_size);
    }
  }
}

void AdamW::zero_grad() {
  for (auto& g : impl_->groups)
    for (auto& p : g.params)
      if (p.mutable_grad().defined()) p.mutable_grad() = torch::Tensor();
}

void AdamW::set_lr_multiplier(double m) {
  auto& s = *impl_;
  s.multiplier = m;
  for (size_t g = 0; g < s.groups.size(); ++g) s.groups[g].lr = s.base_lrs[g] * m;
}

double AdamW::lr(size_t group) const { return impl_->groups.at(group).lr; }

kiln::model::NamedTensors AdamW::state(const std::string& prefix) const {
  const auto& s = *impl_;
  kiln::model::NamedTensors out{{prefix + "lr_multiplier", scalar_f64(s.multiplier)},
                                {prefix + "num_params", scalar_i64(int64_t(s.step.size()))}};
  for (size_t g = 0; g < s.groups.size(); ++g)
    out.emplace_back(prefix + "group" + std::to_string(g) + ".lr", scalar_f64(s.groups[g].lr));
  for (size_t k = 0; k < s.step.size(); ++k) {
    if (!s.exp_avg[k].defined()) continue;
    const auto pre = prefix + std::to_string(k) + ".";
    out.emplace_back(pre + "step", scalar_i64(s.step[k]));
    out.emplace_back(pre + "exp_avg", s.exp_avg[k]);
    out.emplace_back(pre + "exp_avg_sq", s.exp_avg_sq[k]);
  }
  return out;
}

void AdamW::load_state(const std::map<std::string, torch::Tensor>& state, const std::string& prefix) {
  auto& s = *impl_;
  check_num_params(state, prefix, "AdamW", s.step.size());
  s.multiplier = need(state, prefix + "lr_multiplier").item<double>();
  for (size_t g = 0; g < s.groups.size(); ++g)
    s.groups[g].lr = need(state, prefix + "group" + std::to_string(g) + ".lr").item<double>();
  size_t k = 0;
  for (const auto& group : s.groups)
    for (const auto& p : group.params) {
      const auto pre = prefix + std::to_string(k) + ".";
      if (state.count(pre + "step")) {
        s.step[k] = need(state, pre + "step").item<int64_t>();
        s.exp_avg[k] = load_buffer(state, pre + "exp_avg", p);
        s.exp_avg_sq[k] = load_buffer(state, pre + "exp_avg_sq", p);
      } else {
        s.step[k] = 0;
        s.exp_avg[k] = s.exp_avg_sq[k] = torch::Tensor();
      }
      ++k;
    }
}

// ---- Schedules and setup -------------------------------------------------------------------------

double lr_multiplier(int64_t step, int64_t total, double warmup_ratio, double warmdown_ratio, double final_frac) {
  // Python's round() rounds half to even; nearbyint does too in the default rounding mode.
  const int64_t warmup = int64_t(std::nearbyint(warmup_ratio * double(total)));
  const int64_t warmdown = int64_t(std::nearbyint(warmdown_ratio * double(total)));
  if (step < warmup) return double(step + 1) / double(warmup);
  if (step <= total - warmdown) return 1.0;
  const double progress = double(total - step) / double(warmdown);
  return progress * 1.0 + (1.0 - progress) * final_frac;
}

double muon_momentum(int64_t step, double start, double end, int64_t warmup) {
  const double frac = warmup > 0 ? std::min(double(step) / double(warmup), 1.0) : 1.0;
  return (1.0 - frac) * start + frac * end;
}

double adamw_lr_scale(int64_t width) { return std::pow(double(width) / 768.0, -0.5); }

Optimizers make_optimizers(const std::vector<kiln::model::ParamGroup>& groups, const kiln::OptimConfig& o,
                           int64_t width) {
  if (o.recipe == "adamw") {
    std::vector<torch::Tensor> decay, no_decay;
    for (const auto& g : groups) {
      auto* dst = g.role == "vector" ? &no_decay
                  : (g.role == "matrix" || g.role == "embedding" || g.role == "unembedding") ? &decay
                                                                                               : nullptr;
      if (!dst)
        throw Error("optim: the adamw recipe has no rule for parameters of role '" + g.role + "' (" +
                    (g.names.empty() ? std::string("none") : g.names.front()) + ", ...)");
      dst->insert(dst->end(), g.params.begin(), g.params.end());
    }
    AdamW adamw({{decay, o.lr, o.weight_decay}, {no_decay, o.lr, 0.0}}, o.adam_beta1, o.adam_beta2, o.adam_eps,
                o.weight_decay);
    return Optimizers{Muon({}, o.matrix_lr, o.muon_momentum_end, o.ns_steps), std::move(adamw)};
  }
  std::vector<torch::Tensor> matrix, embedding, unembedding;
  for (const auto& g : groups) {
    auto* dst = g.role == "matrix" ? &matrix : g.role == "embedding" ? &embedding : g.role == "unembedding" ? &unembedding : nullptr;
    if (!dst)
      throw Error("optim: the Muon + AdamW recipe has no rule for parameters of role '" + g.role + "' (" +
                      (g.names.empty() ? std::string("none") : g.names.front()) + ", ...)",
                  "optim.recipe adamw steps every role (GPT-2's recipe)");
    dst->insert(dst->end(), g.params.begin(), g.params.end());
  }
  const double scale = adamw_lr_scale(width);
  AdamW adamw({{unembedding, o.unembedding_lr * scale}, {embedding, o.embedding_lr * scale}}, o.adam_beta1, o.adam_beta2,
              o.adam_eps, o.weight_decay);
  Muon muon(matrix, o.matrix_lr, o.muon_momentum_end, o.ns_steps);
  return Optimizers{std::move(muon), std::move(adamw)};
}

double stage_lr_multiplier(int64_t step, int64_t total, const kiln::OptimConfig& o) {
  return o.init_lr_frac * lr_multiplier(step, total, o.warmup_ratio, o.warmdown_ratio, o.final_lr_frac);
}

void Optimizers::set_schedule(int64_t step, int64_t total, const kiln::OptimConfig& o) {
  const double m = stage_lr_multiplier(step, total, o);
  adamw.set_lr_multiplier(m);
  muon.set_lr(o.matrix_lr * m);
  muon.set_momentum(muon_momentum(step, o.muon_momentum_start, o.muon_momentum_end, o.muon_momentum_warmup));
}

void Optimizers::step() {
  muon.step();
  adamw.step();
}

void Optimizers::zero_grad() {
  muon.zero_grad();
  adamw.zero_grad();
}

kiln::model::NamedTensors Optimizers::state() const {
  auto out = muon.state("muon.");
  for (auto& kv : adamw.state("adamw.")) out.push_back(std::move(kv));
  return out;
}

void Optimizers::load_state(const std::map<std::string, torch::Tensor>& state) {
  muon.load_state(state, "muon.");
  adamw.load_state(state, "adamw.");
}

}  // namespace kiln::optim
