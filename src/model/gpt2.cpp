// GPT-2 in LibTorch (see gpt2.h). Parameters sit in small named modules so named_parameters()
// spells Hugging Face's names; forward calls ATen on cached handles (no module dispatch). The
// head is wte itself: registered once, so optimizers, checkpoints and num_params see it once.
#include "model/gpt2.h"

#include <cmath>

#include "core/error.h"
#include "model/kv_cache.h"

namespace kiln::model {

namespace {

// A linear layer's "weight" (out, in) and "bias" (out); values come from init or a checkpoint.
struct Linear : torch::nn::Module {
  torch::Tensor weight, bias;
  Linear(int64_t out, int64_t in, const torch::TensorOptions& o) {
    weight = register_parameter("weight", torch::empty({out, in}, o));
    bias = register_parameter("bias", torch::empty({out}, o));
  }
};

struct Norm : torch::nn::Module {
  torch::Tensor weight, bias;
  Norm(int64_t c, const torch::TensorOptions& o) {
    weight = register_parameter("weight", torch::empty({c}, o));
    bias = register_parameter("bias", torch::empty({c}, o));
  }
};

struct Attn : torch::nn::Module {
  std::shared_ptr<Linear> c_attn, c_proj;
  Attn(int64_t c, const torch::TensorOptions& o) {
    c_attn = register_module("c_attn", std::make_shared<Linear>(3 * c, c, o));
    c_proj = register_module("c_proj", std::make_shared<Linear>(c, c, o));
  }
};

struct Mlp : torch::nn::Module {
  std::shared_ptr<Linear> c_fc, c_proj;
  Mlp(int64_t c, const torch::TensorOptions& o) {
    c_fc = register_module("c_fc", std::make_shared<Linear>(4 * c, c, o));
    c_proj = register_module("c_proj", std::make_shared<Linear>(c, 4 * c, o));
  }
};

struct Block : torch::nn::Module {
  std::shared_ptr<Norm> ln_1, ln_2;
  std::shared_ptr<Attn> attn;
  std::shared_ptr<Mlp> mlp;
  Block(int64_t c, const torch::TensorOptions& o) {  // Hugging Face's registration order
    ln_1 = register_module("ln_1", std::make_shared<Norm>(c, o));
    attn = register_module("attn", std::make_shared<Attn>(c, o));
    ln_2 = register_module("ln_2", std::make_shared<Norm>(c, o));
    mlp = register_module("mlp", std::make_shared<Mlp>(c, o));
  }
};

}  // namespace

struct GPT2Impl::Layers {
  std::shared_ptr<torch::nn::Module> transformer;
  torch::Tensor wte, wpe, lnf_w, lnf_b;
  std::vector<std::shared_ptr<Block>> h;
};

GPT2Config GPT2Config::from(const kiln::ModelConfig& m, int64_t vocab_size) {
  const ModelShape s = derive_shape(m);
  GPT2Config c;
  c.n_layer = s.n_layer;
  c.n_embd = s.width;
  c.n_head = s.n_head;
  c.n_ctx = m.n_ctx > 0 ? m.n_ctx : 1024;
  c.seq_len = m.seq_len;
  c.dropout = m.dropout;
  c.vocab_size = resolve_vocab_size(m, vocab_size);
  return c;
}

GPT2Impl::GPT2Impl(const GPT2Config& cfg, torch::Device device) : cfg_(cfg), layers_(std::make_shared<Layers>()) {
  TORCH_CHECK(cfg.n_layer > 0 && cfg.n_embd > 0 && cfg.n_head > 0 && cfg.n_embd % cfg.n_head == 0,
              "GPT2Config: n_head must divide n_embd");
  TORCH_CHECK(cfg.n_ctx > 0 && cfg.vocab_size > 0, "GPT2Config: empty context or vocabulary");
  const auto o = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  auto& L = *layers_;
  L.transformer = register_module("transformer", std::make_shared<torch::nn::Module>());
  auto sub = [&](const char* name) { return L.transformer->register_module(name, std::make_shared<torch::nn::Module>()); };
  L.wte = sub("wte")->register_parameter("weight", torch::empty({cfg.vocab_size, cfg.n_embd}, o));
  L.wpe = sub("wpe")->register_parameter("weight", torch::empty({cfg.n_ctx, cfg.n_embd}, o));
  auto h = sub("h");
  for (int64_t i = 0; i < cfg.n_layer; ++i)
    L.h.push_back(h->register_module(std::to_string(i), std::make_shared<Block>(cfg.n_embd, o)));
  auto lnf = L.transformer->register_module("ln_f", std::make_shared<Norm>(cfg.n_embd, o));
  L.lnf_w = lnf->weight;
  L.lnf_b = lnf->bias;
}

void GPT2Impl::init_weights(uint64_t seed) {
  torch::NoGradGuard ng;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  // Drawn on the CPU in fp32 in named_parameters() order, so a seed gives the same weights anywhere.
  const double resid_std = 0.02 / std::sqrt(2.0 * double(cfg_.n_layer));
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    torch::Tensor w = p.value();
    if (name.ends_with(".bias")) {
      w.zero_();
    } else if (name.find(".ln_") != std::string::npos) {
      w.fill_(1.0);
    } else {
      auto t = torch::empty(w.sizes(), torch::kFloat32);
      t.normal_(0.0, name.ends_with("c_proj.weight") ? resid_std : 0.02, gen);
      w.copy_(t);
    }
  }
}

template <class Attend>
torch::Tensor GPT2Impl::run(const torch::Tensor& idx, const torch::Tensor& pos, Attend&& attend) {
  const auto& L = *layers_;
  const int64_t B = idx.size(0), T = idx.size(1), C = cfg_.n_embd, H = cfg_.n_head, D = C / H;
  const double p = is_training() ? cfg_.dropout : 0.0;
  const bool train = is_training() && p > 0;
  const double eps = cfg_.layer_norm_eps;
  auto x = at::embedding(L.wte, idx) + at::embedding(L.wpe, pos);
  if (train) x = at::dropout(x, p, true);
  for (size_t i = 0; i < L.h.size(); ++i) {
    const Block& b = *L.h[i];
    auto qkv = at::linear(at::layer_norm(x, {C}, b.ln_1->weight, b.ln_1->bias, eps), b.attn->c_attn->weight,
                          b.attn->c_attn->bias)
                   .view({B, T, 3, H, D});
    auto y = attend(i, qkv.select(2, 0), qkv.select(2, 1), qkv.select(2, 2));  // (B, H, T, D)
    y = at::linear(y.transpose(1, 2).reshape({B, T, C}), b.attn->c_proj->weight, b.attn->c_proj->bias);
    x = x + (train ? at::dropout(y, p, true) : y);
    auto u = at::gelu(at::linear(at::layer_norm(x, {C}, b.ln_2->weight, b.ln_2->bias, eps), b.mlp->c_fc->weight,
                                 b.mlp->c_fc->bias),
                      "tanh");
    auto m = at::linear(u, b.mlp->c_proj->weight, b.mlp->c_proj->bias);
    x = x + (train ? at::dropout(m, p, true) : m);
  }
  return at::layer_norm(x, {C}, L.lnf_w, L.lnf_b, eps);
}

torch::Tensor GPT2Impl::hidden(const torch::Tensor& idx) {
  TORCH_CHECK(idx.dim() == 2, "GPT-2: idx must be (B, T)");
  const int64_t T = idx.size(1);
  if (T > cfg_.n_ctx)
    throw Error("GPT-2: a sequence of " + std::to_string(T) + " tokens exceeds the model's " +
                    std::to_string(cfg_.n_ctx) + " positions (model.n_ctx)",
                "lower model.seq_len to at most model.n_ctx");
  const double p = is_training() ? cfg_.dropout : 0.0;
  auto pos = torch::arange(T, idx.options().dtype(torch::kInt64)).unsqueeze(0);
  return run(idx, pos, [&](size_t, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
    return at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), {}, p,
                                            /*is_causal=*/true);
  });
}

// The tied head: logits = x wte^T, in fp32.
torch::Tensor GPT2Impl::logits(const torch::Tensor& x) const {
  return at::linear(x, layers_->wte).to(torch::kFloat32);
}

torch::Tensor GPT2Impl::loss(const torch::Tensor& idx, const torch::Tensor& targets, bool per_token) {
  TORCH_CHECK(targets.sizes() == idx.sizes(), "GPT-2: targets must have idx's shape");
  auto z = logits(hidden(idx));
  auto l = at::cross_entropy_loss(z.view({-1, z.size(-1)}), targets.reshape({-1}), {},
                                  per_token ? at::Reduction::None : at::Reduction::Mean, -1);
  return per_token ? l.view(targets.sizes()) : l;
}

torch::Tensor GPT2Impl::forward(const torch::Tensor& idx, const torch::Tensor& targets) {
  if (!targets.defined()) return logits(hidden(idx));
  return loss(idx, targets, false);
}

torch::Tensor GPT2Impl::forward_loss_per_token(const torch::Tensor& idx, const torch::Tensor& targets) {
  return loss(idx, targets, true);
}

torch::Tensor GPT2Impl::forward_cached(const torch::Tensor& idx, const std::vector<int64_t>& n_tokens,
                                       const std::vector<int64_t>& slots, KVCache& cache, bool all_logits) {
  TORCH_CHECK(idx.dim() == 2 && static_cast<int64_t>(n_tokens.size()) == idx.size(0), "GPT-2: idx must be (B, T)");
  CachedStep step(cache, n_tokens, slots, idx.size(1), max_positions(), idx.device());
  auto x = run(idx, step.positions(), [&](size_t layer, const torch::Tensor& q, const torch::Tensor& k,
                                          const torch::Tensor& v) { return step.attend(layer, q, k, v); });
  step.commit();
  return logits(all_logits ? x : step.last_rows(x));
}

int64_t GPT2Impl::num_params() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

double GPT2Impl::estimate_flops() const {
  return 6.0 * double(num_params() - layers_->wpe.numel()) +
         12.0 * double(cfg_.n_layer) * double(cfg_.n_embd) * double(cfg_.seq_len);
}

std::vector<ParamGroup> GPT2Impl::param_groups() {
  ParamGroup matrix{"matrix", {}, {}}, embedding{"embedding", {}, {}}, vector{"vector", {}, {}};
  for (auto& p : named_parameters()) {
    const std::string& n = p.key();
    ParamGroup& g = p.value().dim() == 1 ? vector : (n.starts_with("transformer.w") ? embedding : matrix);
    g.names.push_back(n);
    g.params.push_back(p.value());
  }
  return {matrix, embedding, vector};
}

}  // namespace kiln::model
