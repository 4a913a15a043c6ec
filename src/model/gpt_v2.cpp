// nanochat's current GPT (model.arch nanochat2) in LibTorch; see gpt_v2.h. Parameters live in tiny
// named modules so that named_parameters() spells nanochat's names ("transformer.h.0.attn.ve_gate.weight",
// "value_embeds.1.weight", "resid_lambdas", ...); forward works on cached tensor handles.
#include "model/gpt_v2.h"

#include <cmath>

#include "core/error.h"
#include "model/fused_ops.h"
#include "model/gpt_parts.h"
#include "model/kv_cache.h"
#include "model/window_attention.h"

namespace kiln::model {

namespace {

using parts::Block;
using parts::WeightOnly;

constexpr int64_t kVeGateChannels = 12;  // nanochat: the value-embedding gate reads x[..., :12]
constexpr int64_t kSmearChannels = 24;   // and the smear gate x[..., :24]
constexpr double kQkScale = 1.2;         // after QK-norm, on q and k both (sharper attention)

}  // namespace

std::vector<int64_t> window_sizes(const std::string& pattern, int64_t n_layer, int64_t seq_len, int64_t short_window) {
  if (pattern.empty() || pattern.find_first_not_of("SL") != std::string::npos)
    throw Error("model.window_pattern = \"" + pattern + "\" is not a pattern of S and L", "use e.g. SSSL");
  const int64_t long_w = seq_len;
  // nanochat: -(-seq_len // 4 // 128) * 128, i.e. ceil(ceil(seq_len/4)/128)*128 (2048 -> 512).
  const int64_t short_w = short_window > 0 ? short_window : ((seq_len + 3) / 4 + 127) / 128 * 128;
  std::vector<int64_t> w(static_cast<size_t>(n_layer));
  for (int64_t i = 0; i < n_layer; ++i) w[i] = pattern[static_cast<size_t>(i) % pattern.size()] == 'S' ? short_w : long_w;
  if (n_layer > 0) w.back() = long_w;  // the final layer always sees the full context
  return w;
}

bool has_value_embedding(int64_t layer, int64_t n_layer) { return layer % 2 == (n_layer - 1) % 2; }

GPTv2Config GPTv2Config::from(const kiln::ModelConfig& m, int64_t vocab_size) {
  GPTv2Config c;
  static_cast<GPTConfig&>(c) = GPTConfig::from(m, vocab_size);
  c.windows = window_sizes(m.window_pattern, c.n_layer, c.seq_len, m.short_window);
  if (c.n_embd < kSmearChannels)
    throw Error("model.arch nanochat2: width " + std::to_string(c.n_embd) + " is below the smear gate's " +
                    std::to_string(kSmearChannels) + " input channels",
                "use a width of at least 24 (model.width or model.depth)");
  return c;
}

// Cached handles to the parameters and rotary tables. Module::to() swaps tensor data in place
// (set_data), so these handles stay valid across ->to(device).
struct GPTv2Impl::Layers {
  struct L {
    torch::Tensor wq, wk, wv, wo, wfc, wproj;
    torch::Tensor ve, ve_gate;  // undefined on layers without a value embedding
  };
  torch::Tensor wte, lm_head, resid_lambdas, x0_lambdas, smear_gate, smear_lambda, backout_lambda;
  std::vector<L> h;
  std::shared_ptr<torch::nn::Module> transformer, value_embeds;
  torch::Tensor cos, sin;  // (1, T_max, 1, D/2) fp32
};

GPTv2Impl::GPTv2Impl(const GPTv2Config& cfg, torch::Device device) : cfg_(cfg), layers_(std::make_shared<Layers>()) {
  TORCH_CHECK(cfg.n_layer > 0 && cfg.n_embd > 0 && cfg.n_head > 0 && cfg.head_dim > 0, "GPTv2Config: empty shape");
  TORCH_CHECK(cfg.n_kv_head > 0 && cfg.n_head % cfg.n_kv_head == 0, "GPTv2Config: n_kv_head must divide n_head");
  TORCH_CHECK(cfg.head_dim % 2 == 0, "GPTv2Config: rotary needs an even head_dim");
  TORCH_CHECK(cfg.padded_vocab_size >= cfg.vocab_size && cfg.vocab_size > 0, "GPTv2Config: bad vocab sizes");
  TORCH_CHECK(static_cast<int64_t>(cfg.windows.size()) == cfg.n_layer, "GPTv2Config: one window per layer");
  const auto o = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  auto& L = *layers_;
  // Registration order = nanochat's __init__ (transformer.wte, transformer.h.*, lm_head, the
  // lambdas, smear, backout, value_embeds); named_parameters() lists a module's own parameters
  // before its children's, in LibTorch as in PyTorch, so the order of names equals nanochat's.
  L.transformer = register_module("transformer", std::make_shared<torch::nn::Module>());
  auto wte = L.transformer->register_module("wte", std::make_shared<torch::nn::Module>());
  L.wte = wte->register_parameter("weight", torch::empty({cfg.padded_vocab_size, cfg.n_embd}, o));
  auto h = L.transformer->register_module("h", std::make_shared<torch::nn::Module>());
  for (int64_t i = 0; i < cfg.n_layer; ++i) {
    const bool ve = has_value_embedding(i, cfg.n_layer);
    auto b = h->register_module(std::to_string(i), std::make_shared<Block>(cfg, ve ? kVeGateChannels : 0, o));
    L.h.push_back({b->attn->c_q->weight, b->attn->c_k->weight, b->attn->c_v->weight, b->attn->c_proj->weight,
                   b->mlp->c_fc->weight, b->mlp->c_proj->weight, {}, ve ? b->attn->ve_gate->weight : torch::Tensor()});
  }
  auto head = register_module("lm_head", std::make_shared<torch::nn::Module>());
  L.lm_head = head->register_parameter("weight", torch::empty({cfg.padded_vocab_size, cfg.n_embd}, o));
  L.resid_lambdas = register_parameter("resid_lambdas", torch::empty({cfg.n_layer}, o));
  L.x0_lambdas = register_parameter("x0_lambdas", torch::empty({cfg.n_layer}, o));
  auto smear = register_module("smear_gate", std::make_shared<WeightOnly>(1, kSmearChannels, o));
  L.smear_gate = smear->weight;
  L.smear_lambda = register_parameter("smear_lambda", torch::empty({1}, o));
  L.backout_lambda = register_parameter("backout_lambda", torch::empty({1}, o));
  L.value_embeds = register_module("value_embeds", std::make_shared<torch::nn::Module>());
  for (int64_t i = 0; i < cfg.n_layer; ++i) {
    if (!has_value_embedding(i, cfg.n_layer)) continue;
    auto e = L.value_embeds->register_module(std::to_string(i), std::make_shared<torch::nn::Module>());
    L.h[i].ve = e->register_parameter("weight", torch::empty({cfg.padded_vocab_size, cfg.n_kv_head * cfg.head_dim}, o));
  }
  // Rotary tables for 10x the context (as nanochat, so generation may run past seq_len), fp32.
  auto rt = parts::rotary_tables(std::max<int64_t>(1, 10 * cfg.seq_len), cfg.head_dim, cfg.rope_base, device);
  L.cos = register_buffer("rotary_cos", rt.cos);
  L.sin = register_buffer("rotary_sin", rt.sin);
}

void GPTv2Impl::init_weights(uint64_t seed) {
  torch::NoGradGuard ng;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  // Sampled on the CPU in fp32 whatever the device, so a seed gives the same weights everywhere;
  // drawn in nanochat's order.
  auto fill = [&](torch::Tensor& w, auto&& draw) {
    auto t = torch::empty(w.sizes(), torch::kFloat32);
    draw(t);
    w.copy_(t);
  };
  auto normal = [&](torch::Tensor& w, double std) { fill(w, [&](torch::Tensor& t) { t.normal_(0.0, std, gen); }); };
  auto uniform = [&](torch::Tensor& w, double lo, double hi) { fill(w, [&](torch::Tensor& t) { t.uniform_(lo, hi, gen); }); };
  auto& L = *layers_;
  normal(L.wte, 0.8);
  normal(L.lm_head, 0.001);
  const double s = std::sqrt(3.0) / std::sqrt(double(cfg_.n_embd));  // uniform with normal's std 1/sqrt(C)
  for (auto& l : L.h) {
    uniform(l.wq, -s, s);
    uniform(l.wk, -s, s);
    uniform(l.wv, -s, s);
    l.wo.zero_();
    uniform(l.wfc, -0.4 * s, 0.4 * s);
    l.wproj.zero_();
  }
  const int64_t n = cfg_.n_layer;
  for (int64_t i = 0; i < n; ++i) {
    const double f = double(i) / double(std::max<int64_t>(n - 1, 1));
    L.resid_lambdas[i].fill_(1.15 - 0.10 * f);
    L.x0_lambdas[i].fill_(0.20 - 0.15 * f);
  }
  L.smear_lambda.zero_();
  L.backout_lambda.fill_(0.2);
  uniform(L.smear_gate, 0.0, 0.02);
  for (auto& l : L.h)
    if (l.ve.defined()) uniform(l.ve, -s, s);
  for (auto& l : L.h)
    if (l.ve_gate.defined()) uniform(l.ve_gate, 0.0, 0.02);
}

// Embedding and smear. prev_idx (B, T): each position's previous token, -1 where there is none
// (the cache path); undefined: the previous position of the same row (training), which equals it.
// Smear: x_t += smear_lambda * sigmoid(smear_gate(x_t[:24])) * x_{t-1}, with x = norm(wte(idx)).
torch::Tensor GPTv2Impl::embed(const torch::Tensor& idx, const torch::Tensor& prev_idx) {
  const auto& L = *layers_;
  const double eps = cfg_.norm_eps;
  auto x = rms_norm(at::embedding(L.wte, idx), eps);
  if (!prev_idx.defined()) {
    if (x.size(1) < 2) return x;
    auto cur = x.narrow(1, 1, x.size(1) - 1);
    auto gate = L.smear_lambda * at::sigmoid(at::linear(cur.narrow(-1, 0, kSmearChannels), L.smear_gate));
    return torch::cat({x.narrow(1, 0, 1), cur + gate * x.narrow(1, 0, x.size(1) - 1)}, 1);
  }
  auto has = prev_idx.ge(0);
  auto prev = rms_norm(at::embedding(L.wte, prev_idx.clamp_min(0)), eps);
  auto gate = L.smear_lambda * at::sigmoid(at::linear(x.narrow(-1, 0, kSmearChannels), L.smear_gate));
  return torch::where(has.unsqueeze(-1), x + gate * prev, x);
}

torch::Tensor GPTv2Impl::run_blocks(torch::Tensor x, const torch::Tensor& idx, torch::Tensor cos, torch::Tensor sin,
                                    bool fused_qkv, const Attend& attend) {
  const auto& L = *layers_;
  const int64_t B = x.size(0), T = x.size(1), H = cfg_.n_head, Hkv = cfg_.n_kv_head, D = cfg_.head_dim;
  const double eps = cfg_.norm_eps;
  parts::Rotary rotary(std::move(cos), std::move(sin));
  const auto x0 = x;
  const size_t backout_layer = static_cast<size_t>(cfg_.n_layer / 2);
  torch::Tensor x_backout;
  for (size_t i = 0; i < L.h.size(); ++i) {
    const auto& l = L.h[i];
    const auto li = static_cast<int64_t>(i);
    x = L.resid_lambdas[li] * x + L.x0_lambdas[li] * x0;
    auto xn = rms_norm(x, eps);
    // One GEMM for q|k|v in training (Note [Fused qkv] in gpt.cpp), three with the cache.
    torch::Tensor qkv = fused_qkv ? at::linear(xn, torch::cat({l.wq, l.wk, l.wv}, 0))
                                  : torch::cat({at::linear(xn, l.wq), at::linear(xn, l.wk), at::linear(xn, l.wv)}, -1);
    const auto parts_ = qkv.view({B, T, H + 2 * Hkv, D}).split_with_sizes({H + Hkv, Hkv}, 2);
    auto v = parts_[1];
    if (l.ve.defined()) {  // value residual: v += 3 * sigmoid(gate(x[:12])) * ve, per kv head
      auto ve = at::embedding(l.ve, idx).view({B, T, Hkv, D});
      auto gate = 3.0 * at::sigmoid(at::linear(xn.narrow(-1, 0, kVeGateChannels), l.ve_gate));
      v = v + gate.unsqueeze(-1) * ve;
    }
    // Rotary, then QK-norm, then the 1.2 scale on q and k (nanochat's order).
    const auto qk = (rms_norm(rotary(parts_[0]), eps) * kQkScale).split_with_sizes({H, Hkv}, 2);
    auto y = attend(i, qk[0], qk[1], v);  // (B, H, T, D)
    x = x + at::linear(y.transpose(1, 2).reshape({B, T, H * D}), l.wo);
    x = x + at::linear(relu_squared(at::linear(rms_norm(x, eps), l.wfc)), l.wproj);
    if (i == backout_layer) x_backout = x;
  }
  if (x_backout.defined()) x = x - L.backout_lambda * x_backout;
  return rms_norm(x, eps);
}

torch::Tensor GPTv2Impl::hidden(const torch::Tensor& idx) {
  TORCH_CHECK(idx.dim() == 2, "GPTv2: idx must be (B, T)");
  const auto& L = *layers_;
  const int64_t T = idx.size(1);
  TORCH_CHECK(T <= L.cos.size(1), "GPTv2: sequence of ", T, " exceeds the rotary table of ", L.cos.size(1));
  return run_blocks(embed(idx, {}), idx, L.cos.narrow(1, 0, T), L.sin.narrow(1, 0, T), /*fused_qkv=*/true,
                    [&](size_t i, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
                      return window_attention(q, k, v, cfg_.windows[i]);
                    });
}

int64_t GPTv2Impl::max_positions() const { return layers_->cos.size(1); }

torch::Tensor GPTv2Impl::forward_cached(const torch::Tensor& idx, const std::vector<int64_t>& n_tokens,
                                        const std::vector<int64_t>& slots, KVCache& cache, bool all_logits) {
  TORCH_CHECK(idx.dim() == 2 && static_cast<int64_t>(n_tokens.size()) == idx.size(0), "GPTv2: idx must be (B, T)");
  const auto& L = *layers_;
  CachedStep step(cache, n_tokens, slots, idx.size(1), max_positions(), idx.device());
  const auto& pos = step.positions();
  auto cos = L.cos.squeeze(0).index({pos}), sin = L.sin.squeeze(0).index({pos});  // (B, T, 1, D/2)
  auto x = run_blocks(embed(idx, step.previous_tokens(idx)), idx, cos, sin, /*fused_qkv=*/false,
                      [&](size_t i, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
                        return step.attend(i, q, k, v, cfg_.windows[i]);
                      });
  step.commit();
  return parts::softcap_logits(at::linear(all_logits ? x : step.last_rows(x), head_weight()), cfg_.softcap);
}

torch::Tensor GPTv2Impl::head_weight() const { return layers_->lm_head.narrow(0, 0, cfg_.vocab_size); }

torch::Tensor GPTv2Impl::forward(const torch::Tensor& idx, const torch::Tensor& targets) {
  if (!targets.defined()) return parts::softcap_logits(at::linear(hidden(idx), head_weight()), cfg_.softcap);
  TORCH_CHECK(targets.sizes() == idx.sizes(), "GPTv2: targets must have idx's shape");
  return parts::head_loss(at::linear(hidden(idx), head_weight()), targets, cfg_.vocab_size, cfg_.softcap,
                          LossReduction::kMean);
}

torch::Tensor GPTv2Impl::forward_loss_per_token(const torch::Tensor& idx, const torch::Tensor& targets) {
  TORCH_CHECK(targets.sizes() == idx.sizes(), "GPTv2: targets must have idx's shape");
  return parts::head_loss(at::linear(hidden(idx), head_weight()), targets, cfg_.vocab_size, cfg_.softcap,
                          LossReduction::kNone);
}

int64_t GPTv2Impl::num_params() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

std::vector<std::pair<std::string, int64_t>> GPTv2Impl::scaling_params() const {
  const auto& L = *layers_;
  int64_t ve = 0, matrices = 0;
  for (const auto& l : L.h) {
    if (l.ve.defined()) ve += l.ve.numel();
    for (const auto& w : {l.wq, l.wk, l.wv, l.wo, l.wfc, l.wproj, l.ve_gate})
      if (w.defined()) matrices += w.numel();
  }
  const int64_t scalars = L.resid_lambdas.numel() + L.x0_lambdas.numel() + L.smear_gate.numel() +
                          L.smear_lambda.numel() + L.backout_lambda.numel();
  const int64_t total = L.wte.numel() + ve + L.lm_head.numel() + matrices + scalars;
  TORCH_CHECK(total == num_params(), "GPTv2::scaling_params: the groups miss parameters");
  return {{"wte", L.wte.numel()}, {"value_embeds", ve},      {"lm_head", L.lm_head.numel()},
          {"transformer_matrices", matrices}, {"scalars", scalars}, {"total", total}};
}

int64_t GPTv2Impl::num_scaling_params() const {
  int64_t n = 0;
  for (const auto& [group, count] : scaling_params())
    if (group == "transformer_matrices" || group == "lm_head") n += count;
  return n;
}

// nanochat counts every Linear's weight (the block matrices with the value-embedding gates, the
// head, the smear gate) and attention over min(window, seq_len) keys per layer.
double GPTv2Impl::estimate_flops() const {
  const auto& L = *layers_;
  double matmul = double(L.lm_head.numel() + L.smear_gate.numel());
  for (const auto& l : L.h)
    for (const auto& w : {l.wq, l.wk, l.wv, l.wo, l.wfc, l.wproj, l.ve_gate})
      if (w.defined()) matmul += double(w.numel());
  double attn = 0;
  for (const int64_t w : cfg_.windows)
    attn += 12.0 * double(cfg_.n_head) * double(cfg_.head_dim) * double(std::min(w, cfg_.seq_len));
  return 6.0 * matmul + attn;
}

std::vector<ParamGroup> GPTv2Impl::param_groups() {
  const auto& L = *layers_;
  ParamGroup matrix{"matrix", {}, {}}, embedding{"embedding", {}, {}}, value_embedding{"value_embedding", {}, {}},
      unembedding{"unembedding", {}, {}}, resid{"resid_lambda", {}, {}}, x0{"x0_lambda", {}, {}}, smear{"smear", {}, {}};
  for (const auto& kv : named_parameters()) {
    const auto& name = kv.key();
    const auto& p = kv.value();
    ParamGroup& g = name.starts_with("transformer.h.")  ? matrix
                    : p.is_same(L.wte)                   ? embedding
                    : name.starts_with("value_embeds.")  ? value_embedding
                    : p.is_same(L.lm_head)               ? unembedding
                    : p.is_same(L.resid_lambdas)         ? resid
                    : p.is_same(L.x0_lambdas)            ? x0
                                                         : smear;
    g.names.push_back(name);
    g.params.push_back(p);
  }
  TORCH_CHECK(smear.params.size() == 3, "GPTv2::param_groups: expected smear_gate, smear_lambda, backout_lambda");
  return {std::move(matrix),      std::move(embedding), std::move(value_embedding), std::move(unembedding),
          std::move(resid), std::move(x0), std::move(smear)};
}

}  // namespace kiln::model
