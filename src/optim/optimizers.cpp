// Muon, AdamW and the schedules. The arithmetic mirrors nanochat's muon.py and torch.optim.AdamW
// (single-tensor path) op for op, so tests/reference/optim_ref.py can check one step each; all
// state (buffers, step counters, lr, momentum) round-trips through state()/load_state().
#include "optim/optimizers.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "core/error.h"
#include "optim/muon_adamw.h"

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

// Every per-parameter key under `prefix` must name one of `names` (followed by one of
// `suffixes`); anything else was saved for another model (or by position, before format 2).
void check_known_names(const std::map<std::string, torch::Tensor>& s, const std::string& prefix,
                       const std::vector<std::string>& names, std::initializer_list<const char*> suffixes,
                       std::initializer_list<const char*> scalars) {
  std::set<std::string> known(names.begin(), names.end());
  for (auto it = s.lower_bound(prefix); it != s.end() && it->first.starts_with(prefix); ++it) {
    const std::string rest = it->first.substr(prefix.size());
    bool ok = false;
    for (const char* sc : scalars) ok = ok || rest == sc || (std::string(sc) == "group" && rest.starts_with("group"));
    for (const char* suf : suffixes)
      if (!ok && rest.ends_with(suf)) ok = known.count(rest.substr(0, rest.size() - std::strlen(suf))) > 0;
    if (!ok)
      throw Error("optimizer state '" + it->first + "' belongs to no parameter of this model",
                  "the state was saved for another model (or keyed by position by an older kiln)");
  }
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

std::vector<std::string> position_names(size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back(std::to_string(i));
  return out;
}

bool writes_shared(StateScope s) { return s == StateScope::All || s == StateScope::Shared; }
bool writes_owned(StateScope s) { return s == StateScope::All || s == StateScope::Owned; }

int64_t bytes_of(const torch::Tensor& t) { return t.defined() ? t.numel() * t.element_size() : 0; }

}  // namespace

// Note [Optimizer state by name]
// Per-parameter state is keyed by the parameter's name ("muon.<name>.momentum_buffer",
// "adamw.<name>.exp_avg"), not its position, so that a checkpoint says which tensor is which
// whatever rank wrote it. Under ZeRO-1 (dist.zero1) each rank owns a subset of the parameters
// (OwnerFilter): it steps only those, allocates state only for them, and writes only their
// tensors; the shared scalars (lr, momentum, counters) are written by rank 0. Without ZeRO-1
// rank 0 writes everything. The checkpoint's optim_rank_* files thus hold every tensor exactly
// once, and any world size can load them all and keep what it owns (ckpt/checkpoint.cpp).

// ---- Muon --------------------------------------------------------------------------------------

struct Muon::Impl {
  std::vector<torch::Tensor> params, bufs;  // bufs[i] undefined until params[i] first has a grad
  std::vector<torch::Tensor> bufs2;         // NorMuon's second moments, likewise
  std::vector<std::string> names;
  std::vector<char> owned;
  double lr, momentum, weight_decay = 0.0, beta2 = 0.9;
  int64_t ns_steps, steps = 0;
  MuonMath math = MuonMath::NewtonSchulz;
};

Muon::Muon(std::vector<torch::Tensor> params, double lr, double momentum, int64_t ns_steps,
           std::vector<std::string> names, MuonMath math, double beta2)
    : impl_(std::make_shared<Impl>()) {
  for (const auto& p : params) TORCH_CHECK(p.dim() == 2, "Muon takes 2-D matrices, got ", p.sizes());
  if (names.empty()) names = position_names(params.size());
  TORCH_CHECK(names.size() == params.size(), "Muon: ", names.size(), " names for ", params.size(), " parameters");
  impl_->bufs.resize(params.size());
  impl_->bufs2.resize(params.size());
  impl_->math = math;
  impl_->beta2 = beta2;
  impl_->owned.assign(params.size(), 1);
  impl_->params = std::move(params);
  impl_->names = std::move(names);
  impl_->lr = lr;
  impl_->momentum = momentum;
  impl_->ns_steps = ns_steps;
}

void Muon::step() {
  torch::NoGradGuard ng;
  auto& s = *impl_;
  const double m = s.momentum;
  for (size_t i = 0; i < s.params.size(); ++i) {
    if (!s.owned[i]) continue;
    auto& p = s.params[i];
    auto g = p.mutable_grad();
    if (!g.defined()) continue;
    if (!s.bufs[i].defined()) s.bufs[i] = torch::zeros_like(g);
    auto& buf = s.bufs[i];
    if (s.math == MuonMath::NorMuon) {  // nanochat's current muon_step_fused (muon_adamw.h)
      if (!s.bufs2[i].defined()) s.bufs2[i] = torch::zeros(normuon_second_moment_shape(p), p.options());
      const double scale = std::sqrt(std::max(1.0, double(p.size(-2)) / double(p.size(-1))));
      auto pd = p.detach();
      normuon_update(pd, g, buf, s.bufs2[i], m, s.lr * scale, s.weight_decay, s.beta2, s.ns_steps);
      continue;
    }
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
void Muon::set_weight_decay(double wd) { impl_->weight_decay = wd; }
double Muon::weight_decay() const { return impl_->weight_decay; }
double Muon::lr() const { return impl_->lr; }
double Muon::momentum() const { return impl_->momentum; }
int64_t Muon::steps() const { return impl_->steps; }
const std::vector<torch::Tensor>& Muon::params() const { return impl_->params; }
const std::vector<std::string>& Muon::names() const { return impl_->names; }

void Muon::set_owner_filter(const OwnerFilter& owns) {
  auto& s = *impl_;
  for (size_t i = 0; i < s.params.size(); ++i) {
    s.owned[i] = owns(s.names[i]);
    if (!s.owned[i]) s.bufs[i] = s.bufs2[i] = torch::Tensor();
  }
}

kiln::model::NamedTensors Muon::state(const std::string& prefix, StateScope scope) const {
  const auto& s = *impl_;
  kiln::model::NamedTensors out;
  if (writes_shared(scope))
    out = {{prefix + "lr", scalar_f64(s.lr)},
           {prefix + "momentum", scalar_f64(s.momentum)},
           {prefix + "steps", scalar_i64(s.steps)},
           {prefix + "num_params", scalar_i64(int64_t(s.params.size()))}};
  if (writes_shared(scope) && s.math == MuonMath::NorMuon) out.emplace_back(prefix + "weight_decay", scalar_f64(s.weight_decay));
  if (writes_owned(scope))
    for (size_t i = 0; i < s.params.size(); ++i) {
      if (s.owned[i] && s.bufs[i].defined()) out.emplace_back(prefix + s.names[i] + ".momentum_buffer", s.bufs[i]);
      if (s.owned[i] && s.bufs2[i].defined())
        out.emplace_back(prefix + s.names[i] + ".second_momentum_buffer", s.bufs2[i]);
    }
  return out;
}

void Muon::load_state(const std::map<std::string, torch::Tensor>& state, const std::string& prefix) {
  auto& s = *impl_;
  check_num_params(state, prefix, "Muon", s.params.size());
  const bool nor = s.math == MuonMath::NorMuon;
  if (nor)
    check_known_names(state, prefix, s.names, {".momentum_buffer", ".second_momentum_buffer"},
                      {"lr", "momentum", "steps", "num_params", "weight_decay"});
  else
    check_known_names(state, prefix, s.names, {".momentum_buffer"}, {"lr", "momentum", "steps", "num_params"});
  if (nor) s.weight_decay = need(state, prefix + "weight_decay").item<double>();
  s.lr = need(state, prefix + "lr").item<double>();
  s.momentum = need(state, prefix + "momentum").item<double>();
  s.steps = need(state, prefix + "steps").item<int64_t>();
  for (size_t i = 0; i < s.params.size(); ++i) {
    const auto key = prefix + s.names[i] + ".momentum_buffer";
    s.bufs[i] = s.owned[i] && state.count(key) ? load_buffer(state, key, s.params[i]) : torch::Tensor();
    const auto key2 = prefix + s.names[i] + ".second_momentum_buffer";
    s.bufs2[i] = torch::Tensor();
    if (nor && s.owned[i] && state.count(key2)) {
      const auto& t = state.at(key2);
      if (t.sizes() != c10::IntArrayRef(normuon_second_moment_shape(s.params[i])))
        throw Error("optimizer state '" + key2 + "' has shape " + c10::str(t.sizes()) + " but the parameter has " +
                        c10::str(s.params[i].sizes()),
                    "the state was saved for another model");
      s.bufs2[i] = t.to(s.params[i].device(), s.params[i].scalar_type(), false, true);
    }
  }
}

int64_t Muon::state_bytes() const {
  int64_t n = 0;
  for (const auto& b : impl_->bufs) n += bytes_of(b);
  for (const auto& b : impl_->bufs2) n += bytes_of(b);
  return n;
}

// ---- AdamW -------------------------------------------------------------------------------------

struct AdamW::Impl {
  std::vector<Group> groups;
  std::vector<double> base_lrs;
  double beta1, beta2, eps, weight_decay, multiplier = 1.0;
  AdamWMath math = AdamWMath::Torch;
  // Per parameter, flattened over groups in order (as torch: one step counter per parameter).
  std::vector<torch::Tensor> exp_avg, exp_avg_sq;
  std::vector<int64_t> step;
  std::vector<std::string> names;
  std::vector<char> owned;
};

AdamW::AdamW(std::vector<Group> groups, double beta1, double beta2, double eps, double weight_decay, AdamWMath math)
    : impl_(std::make_shared<Impl>()) {
  auto& s = *impl_;
  s.math = math;
  size_t n = 0;
  for (const auto& g : groups) {
    s.base_lrs.push_back(g.lr);
    TORCH_CHECK(g.names.empty() || g.names.size() == g.params.size(), "AdamW: ", g.names.size(), " names for ",
                g.params.size(), " parameters");
    for (size_t i = 0; i < g.params.size(); ++i) s.names.push_back(g.names.empty() ? std::to_string(n + i) : g.names[i]);
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
  s.owned.assign(n, 1);
}

void AdamW::step() {
  torch::NoGradGuard ng;
  auto& s = *impl_;
  size_t i = 0;
  for (auto& group : s.groups) {
    const double lr = group.lr, wd = group.weight_decay >= 0 ? group.weight_decay : s.weight_decay;
    const double beta1 = group.beta1 >= 0 ? group.beta1 : s.beta1, beta2 = group.beta2 >= 0 ? group.beta2 : s.beta2;
    for (auto& p : group.params) {
      const size_t k = i++;
      if (!s.owned[k]) continue;
      const auto& g = p.grad();
      if (!g.defined()) continue;
      if (!s.exp_avg[k].defined()) {
        s.exp_avg[k] = torch::zeros_like(p);
        s.exp_avg_sq[k] = torch::zeros_like(p);
      }
      const int64_t t = ++s.step[k];
      if (s.math == AdamWMath::Fused) {  // nanochat's current adamw_step_fused (muon_adamw.h)
        auto pd = p.detach();
        adamw_fused_update(pd, g, s.exp_avg[k], s.exp_avg_sq[k], t, lr, beta1, beta2, s.eps, wd);
        continue;
      }
      if (wd != 0.0) p.mul_(1.0 - lr * wd);  // mul_(1.0) would be a no-op
      s.exp_avg[k].lerp_(g, 1.0 - beta1);
      s.exp_avg_sq[k].mul_(beta2).addcmul_(g, g, 1.0 - beta2);
      // Same double arithmetic as torch.optim.adamw._single_tensor_adamw.
      const double bc1 = 1.0 - std::pow(beta1, double(t));
      const double bc2 = 1.0 - std::pow(beta2, double(t));
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

const std::vector<std::string>& AdamW::names() const { return impl_->names; }

void AdamW::set_owner_filter(const OwnerFilter& owns) {
  auto& s = *impl_;
  for (size_t k = 0; k < s.names.size(); ++k) {
    s.owned[k] = owns(s.names[k]);
    if (!s.owned[k]) s.exp_avg[k] = s.exp_avg_sq[k] = torch::Tensor(), s.step[k] = 0;
  }
}

kiln::model::NamedTensors AdamW::state(const std::string& prefix, StateScope scope) const {
  const auto& s = *impl_;
  kiln::model::NamedTensors out;
  if (writes_shared(scope)) {
    out = {{prefix + "lr_multiplier", scalar_f64(s.multiplier)},
           {prefix + "num_params", scalar_i64(int64_t(s.step.size()))}};
    for (size_t g = 0; g < s.groups.size(); ++g)
      out.emplace_back(prefix + "group" + std::to_string(g) + ".lr", scalar_f64(s.groups[g].lr));
  }
  if (!writes_owned(scope)) return out;
  for (size_t k = 0; k < s.step.size(); ++k) {
    if (!s.owned[k] || !s.exp_avg[k].defined()) continue;
    const auto pre = prefix + s.names[k] + ".";
    out.emplace_back(pre + "step", scalar_i64(s.step[k]));
    out.emplace_back(pre + "exp_avg", s.exp_avg[k]);
    out.emplace_back(pre + "exp_avg_sq", s.exp_avg_sq[k]);
  }
  return out;
}

void AdamW::load_state(const std::map<std::string, torch::Tensor>& state, const std::string& prefix) {
  auto& s = *impl_;
  check_num_params(state, prefix, "AdamW", s.step.size());
  check_known_names(state, prefix, s.names, {".step", ".exp_avg", ".exp_avg_sq"},
                    {"lr_multiplier", "num_params", "group"});
  s.multiplier = need(state, prefix + "lr_multiplier").item<double>();
  for (size_t g = 0; g < s.groups.size(); ++g)
    s.groups[g].lr = need(state, prefix + "group" + std::to_string(g) + ".lr").item<double>();
  size_t k = 0;
  for (const auto& group : s.groups)
    for (const auto& p : group.params) {
      const auto pre = prefix + s.names[k] + ".";
      if (s.owned[k] && state.count(pre + "step")) {
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

int64_t AdamW::state_bytes() const {
  int64_t n = 0;
  for (size_t k = 0; k < impl_->step.size(); ++k) n += bytes_of(impl_->exp_avg[k]) + bytes_of(impl_->exp_avg_sq[k]);
  return n;
}

// ---- Schedules and setup -------------------------------------------------------------------------

namespace {
// Python's round() rounds half to even; nearbyint does too in the default rounding mode.
int64_t round_steps(double ratio, int64_t total) { return int64_t(std::nearbyint(ratio * double(total))); }
}  // namespace

double lr_multiplier(int64_t step, int64_t total, double warmup_ratio, double warmdown_ratio, double final_frac) {
  return lr_multiplier_steps(step, total, round_steps(warmup_ratio, total), warmdown_ratio, final_frac);
}

double lr_multiplier_steps(int64_t step, int64_t total, int64_t warmup, double warmdown_ratio, double final_frac) {
  const int64_t warmdown = round_steps(warmdown_ratio, total);
  if (step < warmup) return double(step + 1) / double(warmup);
  if (step <= total - warmdown) return 1.0;
  const double progress = double(total - step) / double(warmdown);
  return progress * 1.0 + (1.0 - progress) * final_frac;
}

double muon_momentum(int64_t step, double start, double end, int64_t warmup) {
  const double frac = warmup > 0 ? std::min(double(step) / double(warmup), 1.0) : 1.0;
  return (1.0 - frac) * start + frac * end;
}

double muon_momentum_at(int64_t step, int64_t total, const kiln::OptimConfig& o) {
  const double start = o.muon_momentum_start, end = o.muon_momentum_end;
  if (o.muon_momentum_final < 0 || step < o.muon_momentum_warmup)
    return muon_momentum(step, start, end, o.muon_momentum_warmup);
  // base_train.py's get_muon_momentum: down to muon_momentum_final over the LR warmdown
  const int64_t warmdown = round_steps(o.warmdown_ratio, total), warmdown_start = total - warmdown;
  if (warmdown <= 0 || step < warmdown_start) return end;
  const double progress = double(step - warmdown_start) / double(warmdown);
  return end * (1.0 - progress) + o.muon_momentum_final * progress;
}

double muon_weight_decay_at(int64_t step, int64_t total, const kiln::OptimConfig& o) {
  const double wd = o.weight_decay * o.weight_decay_scale;
  if (o.weight_decay_schedule != "cosine") return wd;
  return wd * 0.5 * (1.0 + std::cos(M_PI * double(step) / double(total)));  // base_train.py's get_weight_decay
}

double adamw_lr_scale(int64_t width) { return std::pow(double(width) / 768.0, -0.5); }

namespace {

// nanochat's GPT.setup_optimizer (gpt.py at 92d63d4): one AdamW group per role, in its order, with
// the lr (before the dmodel and batch scales), betas and weight decay it hard-codes there.
struct AdamWRole {
  const char* role;
  double (*lr)(const kiln::OptimConfig&);
  bool dmodel_scaled, batch_scaled;
  double beta1, beta2, weight_decay;
};
const AdamWRole kMuonAdamWRoles[] = {
    {"unembedding", [](const kiln::OptimConfig& o) { return o.unembedding_lr; }, true, true, 0.8, 0.96, 0.01},
    {"embedding", [](const kiln::OptimConfig& o) { return o.embedding_lr; }, true, true, 0.8, 0.995, 0.001},
    {"value_embedding", [](const kiln::OptimConfig& o) { return o.embedding_lr * 0.5; }, true, true, 0.8, 0.995, 0.01},
    {"resid_lambda", [](const kiln::OptimConfig& o) { return o.scalar_lr * 0.01; }, false, true, 0.8, 0.95, 0.05},
    {"x0_lambda", [](const kiln::OptimConfig& o) { return o.scalar_lr; }, false, true, 0.96, 0.95, 0.0},
    {"smear", [](const kiln::OptimConfig&) { return 0.2; }, false, false, 0.8, 0.95, 0.0},  // a fixed 0.2 in nanochat
};

std::string first_name(const kiln::model::ParamGroup& g) { return g.names.empty() ? std::string("none") : g.names.front(); }

// optim.recipe muon_adamw: nanochat's current MuonAdamW. Muon (NorMuon math) on "matrix" (nanochat
// stacks same-shape matrices; the math is per matrix, so one kiln Muon steps them one by one), and
// the fused AdamW with one group per role of kMuonAdamWRoles.
Optimizers make_muon_adamw(const std::vector<kiln::model::ParamGroup>& groups, const kiln::OptimConfig& o,
                           int64_t width) {
  if (o.batch_lr_scale < 0 || o.weight_decay_scale < 0)
    throw Error("optim.batch_lr_scale / optim.weight_decay_scale = -1 (auto) reached the optimizer unresolved",
                "the trainer resolves them at start (train/scaling.h); set them explicitly when building optimizers directly");
  const double dmodel = adamw_lr_scale(width), batch = o.batch_lr_scale;
  std::vector<torch::Tensor> matrix;
  std::vector<std::string> matrix_n;
  std::vector<AdamW::Group> adam;
  for (const auto& r : kMuonAdamWRoles)
    adam.push_back({{}, r.lr(o) * (r.dmodel_scaled ? dmodel : 1.0) * (r.batch_scaled ? batch : 1.0), {},
                    r.weight_decay, r.beta1, r.beta2});
  for (const auto& g : groups) {
    TORCH_CHECK(g.names.size() == g.params.size(), "make_optimizers: group '", g.role, "' has ", g.names.size(),
                " names for ", g.params.size(), " parameters");
    if (g.role == "matrix") {
      matrix.insert(matrix.end(), g.params.begin(), g.params.end());
      matrix_n.insert(matrix_n.end(), g.names.begin(), g.names.end());
      continue;
    }
    size_t k = 0;
    while (k < std::size(kMuonAdamWRoles) && g.role != kMuonAdamWRoles[k].role) ++k;
    if (k == std::size(kMuonAdamWRoles))
      throw Error("optim: the muon_adamw recipe has no rule for parameters of role '" + g.role + "' (" + first_name(g) +
                      ", ...)",
                  "optim.recipe muon_adamw steps nanochat's current model (model.arch nanochat2); use optim.recipe "
                  "nanochat for the V1 model");
    adam[k].params.insert(adam[k].params.end(), g.params.begin(), g.params.end());
    adam[k].names.insert(adam[k].names.end(), g.names.begin(), g.names.end());
  }
  AdamW adamw(std::move(adam), 0.8, 0.95, o.adam_eps, 0.0, AdamWMath::Fused);
  Muon muon(matrix, o.matrix_lr * batch, o.muon_momentum_end, o.ns_steps, matrix_n, MuonMath::NorMuon, o.muon_beta2);
  muon.set_weight_decay(o.weight_decay * o.weight_decay_scale);
  Optimizers out{std::move(muon), std::move(adamw)};
  out.recipe = o.recipe;
  return out;
}

}  // namespace

Optimizers make_optimizers(const std::vector<kiln::model::ParamGroup>& groups, const kiln::OptimConfig& o,
                           int64_t width) {
  if (o.recipe == "muon_adamw") return make_muon_adamw(groups, o, width);
  if (o.recipe == "adamw") {
    std::vector<torch::Tensor> decay, no_decay;
    std::vector<std::string> decay_n, no_decay_n;
    for (const auto& g : groups) {
      const bool vector = g.role == "vector";
      if (!vector && g.role != "matrix" && g.role != "embedding" && g.role != "unembedding")
        throw Error("optim: the adamw recipe has no rule for parameters of role '" + g.role + "' (" +
                    (g.names.empty() ? std::string("none") : g.names.front()) + ", ...)");
      TORCH_CHECK(g.names.size() == g.params.size(), "make_optimizers: group '", g.role, "' has ", g.names.size(),
                  " names for ", g.params.size(), " parameters");
      (vector ? no_decay : decay).insert((vector ? no_decay : decay).end(), g.params.begin(), g.params.end());
      (vector ? no_decay_n : decay_n).insert((vector ? no_decay_n : decay_n).end(), g.names.begin(), g.names.end());
    }
    AdamW adamw({{decay, o.lr, decay_n, o.weight_decay}, {no_decay, o.lr, no_decay_n, 0.0}}, o.adam_beta1,
                o.adam_beta2, o.adam_eps, o.weight_decay);
    return Optimizers{Muon({}, o.matrix_lr, o.muon_momentum_end, o.ns_steps), std::move(adamw), true};
  }
  // Per role: the tensors and their names (the state is keyed by name, Note [Optimizer state by name]).
  std::vector<torch::Tensor> matrix, embedding, unembedding;
  std::vector<std::string> matrix_n, embedding_n, unembedding_n;
  // model.arch nanochat2's extra roles, as AdamW groups after the two above (so V1's group indices
  // and state keys stay as they were), with nanochat's lr and weight decay per group (scalar_lr
  // 0.5); the betas stay the optimizer's own. A stopgap until nanochat's MuonAdamW lands.
  const double scale = adamw_lr_scale(width);
  struct Extra { const char* role; double lr, wd; };
  const Extra extras[] = {{"value_embedding", o.embedding_lr * scale * 0.5, 0.01}, {"resid_lambda", 0.5 * 0.01, 0.05},
                          {"x0_lambda", 0.5, 0.0}, {"smear", 0.2, 0.0}};
  std::vector<AdamW::Group> extra_groups;
  for (const auto& g : groups) {
    bool extra = false;
    for (const auto& e : extras)
      if (g.role == e.role && !g.params.empty()) extra_groups.push_back({g.params, e.lr, g.names, e.wd}), extra = true;
    if (extra) continue;
    auto* dst = g.role == "matrix" ? &matrix : g.role == "embedding" ? &embedding : g.role == "unembedding" ? &unembedding : nullptr;
    auto* dst_n = g.role == "matrix" ? &matrix_n : g.role == "embedding" ? &embedding_n : &unembedding_n;
    if (!dst)
      throw Error("optim: the Muon + AdamW recipe has no rule for parameters of role '" + g.role + "' (" +
                      (g.names.empty() ? std::string("none") : g.names.front()) + ", ...)",
                  "optim.recipe adamw steps every role (GPT-2's recipe)");
    TORCH_CHECK(g.names.size() == g.params.size(), "make_optimizers: group '", g.role, "' has ", g.names.size(),
                " names for ", g.params.size(), " parameters");
    dst->insert(dst->end(), g.params.begin(), g.params.end());
    dst_n->insert(dst_n->end(), g.names.begin(), g.names.end());
  }
  std::vector<AdamW::Group> adamw_groups{{unembedding, o.unembedding_lr * scale, unembedding_n},
                                         {embedding, o.embedding_lr * scale, embedding_n}};
  adamw_groups.insert(adamw_groups.end(), extra_groups.begin(), extra_groups.end());
  AdamW adamw(std::move(adamw_groups), o.adam_beta1, o.adam_beta2, o.adam_eps, o.weight_decay);
  Muon muon(matrix, o.matrix_lr, o.muon_momentum_end, o.ns_steps, matrix_n);
  Optimizers out{std::move(muon), std::move(adamw)};
  for (const auto& g : groups)
    for (const auto& e : extras)
      if (g.role == e.role && !g.params.empty()) out.extra_roles.push_back(g.role);
  return out;
}

double stage_lr_multiplier(int64_t step, int64_t total, const kiln::OptimConfig& o) {
  const int64_t warmup = o.warmup_steps >= 0 ? o.warmup_steps : round_steps(o.warmup_ratio, total);
  return o.init_lr_frac * lr_multiplier_steps(step, total, warmup, o.warmdown_ratio, o.final_lr_frac);
}

void Optimizers::set_schedule(int64_t step, int64_t total, const kiln::OptimConfig& o) {
  const double m = stage_lr_multiplier(step, total, o);
  adamw.set_lr_multiplier(m);
  if (recipe == "muon_adamw") {
    muon.set_lr(o.matrix_lr * o.batch_lr_scale * m);
    muon.set_weight_decay(muon_weight_decay_at(step, total, o));
  } else {
    muon.set_lr(o.matrix_lr * m);
  }
  muon.set_momentum(muon_momentum_at(step, total, o));
}

std::vector<std::pair<std::string, double>> Optimizers::group_lrs() const {
  if (adamw_recipe) return {{"decay", adamw.lr(0)}, {"no_decay", adamw.lr(1)}};
  if (recipe == "muon_adamw") {
    std::vector<std::pair<std::string, double>> out{{"matrix", muon.lr()}};
    for (size_t k = 0; k < std::size(kMuonAdamWRoles); ++k) out.emplace_back(kMuonAdamWRoles[k].role, adamw.lr(k));
    return out;
  }
  std::vector<std::pair<std::string, double>> out{{"matrix", muon.lr()}, {"unembedding", adamw.lr(0)},
                                                  {"embedding", adamw.lr(1)}};
  for (size_t g = 2; g < extra_roles.size() + 2; ++g) out.emplace_back(extra_roles[g - 2], adamw.lr(g));
  return out;
}

void Optimizers::step() {
  muon.step();
  adamw.step();
}

void Optimizers::zero_grad() {
  muon.zero_grad();
  adamw.zero_grad();
}

kiln::model::NamedTensors Optimizers::state(StateScope scope) const {
  auto out = muon.state("muon.", scope);
  for (auto& kv : adamw.state("adamw.", scope)) out.push_back(std::move(kv));
  return out;
}

void Optimizers::set_owner_filter(const OwnerFilter& filter) {
  owns = filter;
  muon.set_owner_filter(filter);
  adamw.set_owner_filter(filter);
}

bool Optimizers::keeps_state(const std::string& key) const {
  if (!owns) return true;
  // "<muon.|adamw.><parameter name><.momentum_buffer|.second_momentum_buffer|.step|.exp_avg|.exp_avg_sq>" (Note
  // [Optimizer state by name]); anything else is a shared scalar.
  for (const char* prefix : {"muon.", "adamw."}) {
    if (!key.starts_with(prefix)) continue;
    const std::string rest = key.substr(std::string(prefix).size());
    for (const char* suffix : {".second_momentum_buffer", ".momentum_buffer", ".exp_avg_sq", ".exp_avg", ".step"})
      if (rest.ends_with(suffix)) {
        const std::string name = rest.substr(0, rest.size() - std::string(suffix).size());
        const auto& names = std::string(prefix) == "muon." ? muon.names() : adamw.names();
        if (std::find(names.begin(), names.end(), name) != names.end()) return owns(name);
      }
  }
  return true;
}

int64_t Optimizers::state_bytes() const { return muon.state_bytes() + adamw.state_bytes(); }

void Optimizers::load_state(const std::map<std::string, torch::Tensor>& state) {
  muon.load_state(state, "muon.");
  adamw.load_state(state, "adamw.");
}

}  // namespace kiln::optim
