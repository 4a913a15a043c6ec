// The nanochat V1 GPT in LibTorch. Parameters live in tiny named modules so that
// named_parameters() spells nanochat's names ("transformer.h.0.attn.c_q.weight"), while forward
// works on cached tensor handles and calls ATen ops directly: no per-call module dispatch.
#include "model/gpt.h"

#include <cmath>

#include "core/error.h"
#include "model/fp8.h"
#include "model/fused_ops.h"
#include "model/gpt_parts.h"
#include "model/kv_cache.h"
#include "model/softcap_ce.h"

namespace kiln::model {

namespace {

using parts::Block;

}  // namespace

// Cached handles to the parameters and rotary tables. Module::to() swaps tensor data in place
// (set_data), so these handles stay valid across ->to(device).
struct GPTImpl::Layers {
  struct L {
    torch::Tensor wq, wk, wv, wo, wfc, wproj;
    torch::Tensor wqkv;  // see Note [Stored qkv]; undefined until the first cached forward
  };
  torch::Tensor wte, lm_head;
  std::vector<L> h;
  std::shared_ptr<torch::nn::Module> transformer;
  std::vector<std::shared_ptr<Block>> blocks;
  // Rotary tables (1, T_max, 1, D/2) in fp32. See Note [Rotary].
  torch::Tensor cos, sin;
};

// Note [Fused qkv]: c_q, c_k and c_v stay separate parameters (nanochat's names, and Muon
// orthogonalises each on its own), but forward concatenates them and runs one GEMM: backward
// then does one GEMM for the input gradient instead of three plus two adds, and the three weight
// gradients come out as slices of one. The cat copies 3*C^2 floats per layer, which is small
// beside B*T*C activations. Rotary and QK-norm act per head, so they run once on the q|k heads.

// Note [Stored qkv]: decode reads every weight once per token, so one GEMM over a q|k|v matrix
// that is already in memory beats three GEMMs and a cat of their outputs (and a cat of the
// weights per token would copy 3*C^2 floats to produce B*3*C). The first cached forward makes
// c_q, c_k and c_v views into one matrix (set_data: the parameters keep their names, shapes and
// autograd identity, and an optimizer step in place still updates the matrix, so it never goes
// stale); a later set_data (Module::to, a load that swaps data) is seen by the data pointers and
// the matrix is built again. No memory is added: the three weights live in it.
// Note [Rotary]: see gpt_parts.cpp.

GPTConfig GPTConfig::from(const kiln::ModelConfig& m, int64_t vocab_size) {
  const ModelShape s = derive_shape(m);
  GPTConfig c;
  c.n_layer = s.n_layer;
  c.n_embd = s.width;
  c.n_head = s.n_head;
  c.n_kv_head = s.n_kv_head;
  c.head_dim = s.head_dim;
  c.seq_len = m.seq_len;
  c.vocab_size = resolve_vocab_size(m, vocab_size);
  c.padded_vocab_size = (c.vocab_size + 63) / 64 * 64;
  c.softcap = m.softcap;
  c.rope_base = m.rope_base;
  c.norm_eps = m.norm_eps;
  return c;
}

GPTImpl::GPTImpl(const GPTConfig& cfg, torch::Device device) : cfg_(cfg), layers_(std::make_shared<Layers>()) {
  TORCH_CHECK(cfg.n_layer > 0 && cfg.n_embd > 0 && cfg.n_head > 0 && cfg.head_dim > 0, "GPTConfig: empty shape");
  TORCH_CHECK(cfg.n_kv_head > 0 && cfg.n_head % cfg.n_kv_head == 0, "GPTConfig: n_kv_head must divide n_head");
  TORCH_CHECK(cfg.head_dim % 2 == 0, "GPTConfig: rotary needs an even head_dim");
  TORCH_CHECK(cfg.padded_vocab_size >= cfg.vocab_size && cfg.vocab_size > 0, "GPTConfig: bad vocab sizes");
  const auto o = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  auto& L = *layers_;
  // Registration order = nanochat's (transformer.wte, transformer.h.*, lm_head): init order and
  // the order of named_parameters() follow it.
  L.transformer = register_module("transformer", std::make_shared<torch::nn::Module>());
  auto wte = L.transformer->register_module("wte", std::make_shared<torch::nn::Module>());
  L.wte = wte->register_parameter("weight", torch::empty({cfg.padded_vocab_size, cfg.n_embd}, o));
  auto h = L.transformer->register_module("h", std::make_shared<torch::nn::Module>());
  for (int64_t i = 0; i < cfg.n_layer; ++i) {
    auto b = h->register_module(std::to_string(i), std::make_shared<Block>(cfg, /*ve_gate_in=*/0, o));
    L.blocks.push_back(b);
    L.h.push_back({b->attn->c_q->weight, b->attn->c_k->weight, b->attn->c_v->weight, b->attn->c_proj->weight,
                   b->mlp->c_fc->weight, b->mlp->c_proj->weight});
  }
  auto head = register_module("lm_head", std::make_shared<torch::nn::Module>());
  L.lm_head = head->register_parameter("weight", torch::empty({cfg.padded_vocab_size, cfg.n_embd}, o));

  // Rotary tables for 10x the context (as nanochat, so generation may run past seq_len), fp32.
  auto rt = parts::rotary_tables(std::max<int64_t>(1, 10 * cfg.seq_len), cfg.head_dim, cfg.rope_base, device);
  L.cos = register_buffer("rotary_cos", rt.cos);
  L.sin = register_buffer("rotary_sin", rt.sin);
}

void GPTImpl::init_weights(uint64_t seed) {
  torch::NoGradGuard ng;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  // Sampled on the CPU in fp32 whatever the device, so a seed gives the same weights everywhere.
  auto fill_normal = [&](torch::Tensor& w, double std) {
    auto t = torch::empty(w.sizes(), torch::kFloat32);
    t.normal_(0.0, std, gen);
    w.copy_(t);
  };
  auto linear = [&](torch::Tensor& w) {
    const double fan_out = double(w.size(0)), fan_in = double(w.size(1));
    fill_normal(w, 1.0 / std::sqrt(fan_in) * std::min(1.0, std::sqrt(fan_out / fan_in)));
  };
  auto& L = *layers_;
  fill_normal(L.wte, 1.0);
  for (auto& l : L.h) {
    // nanochat draws every linear first (apply order), then zeroes the residual projections;
    // drawing them too keeps the generator stream identical to that order.
    for (auto* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.wfc, &l.wproj}) linear(*w);
    l.wo.zero_();
    l.wproj.zero_();
  }
  linear(L.lm_head);  // drawn, then zeroed: the same draws in the same order as nanochat's apply()
  L.lm_head.zero_();
}

// The residual stream after the final norm, (B, T, C).
torch::Tensor GPTImpl::hidden(const torch::Tensor& idx) {
  TORCH_CHECK(idx.dim() == 2, "GPT: idx must be (B, T)");
  const auto& L = *layers_;
  const int64_t T = idx.size(1);
  TORCH_CHECK(T <= L.cos.size(1), "GPT: sequence of ", T, " exceeds the rotary table of ", L.cos.size(1));
  const bool gqa = cfg_.n_kv_head != cfg_.n_head;
  return run_blocks(at::embedding(L.wte, idx), L.cos.narrow(1, 0, T), L.sin.narrow(1, 0, T), /*fused_qkv=*/true,
                    [&](size_t, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
                      return at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                                              v.transpose(1, 2), {}, 0.0, /*is_causal=*/true,
                                                              std::nullopt, gqa);
                    });
}

torch::Tensor GPTImpl::run_blocks(
    torch::Tensor x, torch::Tensor cos, torch::Tensor sin, bool fused_qkv,
    const std::function<torch::Tensor(size_t, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)>&
        attend) {
  const auto& L = *layers_;
  const int64_t B = x.size(0), T = x.size(1), H = cfg_.n_head, Hkv = cfg_.n_kv_head, D = cfg_.head_dim;
  const double eps = cfg_.norm_eps;
  x = rms_norm(x, eps);
  parts::Rotary rotary(std::move(cos), std::move(sin));  // see Note [Rotary]
  for (size_t i = 0; i < L.h.size(); ++i) {
    const auto& l = L.h[i];
    // Training: one GEMM for q, k and v (see Note [Fused qkv]). Inference with the cache: one
    // GEMM over the stored q|k|v matrix (Note [Stored qkv]); rotary and QK-norm on q and k
    // together. Under
    // train.fp8 (fp8::Guard) each training GEMM runs in FP8; the fused q|k|v weight then shares
    // one scale, where nanochat's three linears have one each.
    auto xn = rms_norm(x, eps);
    torch::Tensor qkv;
    if (fused_qkv)
      qkv = fp8::maybe_linear(xn, torch::cat({l.wq, l.wk, l.wv}, 0));
    else if (torch::GradMode::is_enabled() && l.wq.requires_grad())  // gradients must reach the three leaves
      qkv = torch::cat({at::linear(xn, l.wq), at::linear(xn, l.wk), at::linear(xn, l.wv)}, -1);
    else
      qkv = at::linear(xn, stored_qkv(i));
    // split, not narrow: see Note [Split, not narrow] in gpt_parts.cpp.
    const auto qk_v = qkv.view({B, T, H + 2 * Hkv, D}).split_with_sizes({H + Hkv, Hkv}, 2);
    const auto qk = rms_norm(rotary(qk_v[0]), eps).split_with_sizes({H, Hkv}, 2);  // QK-norm after rotary, as nanochat
    const auto &q = qk[0], &k = qk[1], &v = qk_v[1];
    auto y = attend(i, q, k, v);  // (B, H, T, D)
    x = x + fp8::maybe_linear(y.transpose(1, 2).reshape({B, T, H * D}), l.wo);
    x = x + fp8::maybe_linear(model::relu_squared(fp8::maybe_linear(rms_norm(x, eps), l.wfc)), l.wproj);
  }
  return rms_norm(x, eps);
}

torch::Tensor GPTImpl::stored_qkv(size_t i) {
  auto& l = layers_->h.at(i);
  const int64_t nq = l.wq.size(0), nk = l.wk.size(0), nv = l.wv.size(0);
  const auto* base = l.wqkv.defined() ? static_cast<const char*>(l.wqkv.const_data_ptr()) : nullptr;
  const int64_t row = l.wq.size(1) * static_cast<int64_t>(l.wq.element_size());
  const bool fresh = base && l.wqkv.device() == l.wq.device() && l.wqkv.scalar_type() == l.wq.scalar_type() &&
                     l.wq.const_data_ptr() == base && l.wk.const_data_ptr() == base + nq * row &&
                     l.wv.const_data_ptr() == base + (nq + nk) * row;
  if (!fresh) {
    torch::NoGradGuard ng;
    auto w = torch::cat({l.wq, l.wk, l.wv}, 0);
    l.wq.set_data(w.narrow(0, 0, nq));
    l.wk.set_data(w.narrow(0, nq, nk));
    l.wv.set_data(w.narrow(0, nq + nk, nv));
    l.wqkv = w;
  }
  return l.wqkv;
}

int64_t GPTImpl::max_positions() const { return layers_->cos.size(1); }

// Inference: the rows' positions index the rotary table; CachedStep does the cache bookkeeping
// and the attention (see Note [Cached attention] in kv_cache.cpp).
torch::Tensor GPTImpl::forward_cached(const torch::Tensor& idx, const std::vector<int64_t>& n_tokens,
                                      const std::vector<int64_t>& slots, KVCache& cache, bool all_logits) {
  TORCH_CHECK(idx.dim() == 2 && static_cast<int64_t>(n_tokens.size()) == idx.size(0), "GPT: idx must be (B, T)");
  const auto& L = *layers_;
  CachedStep step(cache, n_tokens, slots, idx.size(1), max_positions(), idx.device());
  // Rows in step (every decode step of a batch that started together): the tables' rows are a
  // view; ragged rows gather theirs by position, (B, T, 1, D/2).
  const int64_t start = step.shared_start(), T = idx.size(1);
  const auto& pos = step.positions();
  auto cos = start >= 0 ? L.cos.narrow(1, start, T) : L.cos.squeeze(0).index({pos});
  auto sin = start >= 0 ? L.sin.narrow(1, start, T) : L.sin.squeeze(0).index({pos});
  auto x = run_blocks(at::embedding(L.wte, idx), cos, sin, /*fused_qkv=*/false,
                      [&](size_t layer, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
                        return step.attend(layer, q, k, v);
                      });
  step.commit();
  return logits_from_hidden(all_logits ? x : step.last_rows(x));
}

// The head's rows for the real vocabulary: a contiguous prefix, so the GEMM skips the padding
// rows at no copy (their gradient is zero, as when nanochat slices the logits).
torch::Tensor GPTImpl::head_weight() const { return layers_->lm_head.narrow(0, 0, cfg_.vocab_size); }

// Logits over the real vocabulary in fp32, softcapped: s * tanh(z / s).
torch::Tensor GPTImpl::logits_from_hidden(const torch::Tensor& x) {
  return parts::softcap_logits(fp8::maybe_linear(x, head_weight()), cfg_.softcap);
}

torch::Tensor GPTImpl::loss(const torch::Tensor& idx, const torch::Tensor& targets, LossReduction reduction) {
  TORCH_CHECK(targets.sizes() == idx.sizes(), "GPT: targets must have idx's shape");
  return parts::head_loss(fp8::maybe_linear(hidden(idx), head_weight()), targets, cfg_.vocab_size, cfg_.softcap,
                          reduction);
}

torch::Tensor GPTImpl::forward(const torch::Tensor& idx, const torch::Tensor& targets) {
  if (!targets.defined()) return logits_from_hidden(hidden(idx));
  return loss(idx, targets, LossReduction::kMean);
}

torch::Tensor GPTImpl::forward_loss_per_token(const torch::Tensor& idx, const torch::Tensor& targets) {
  return loss(idx, targets, LossReduction::kNone);
}

int64_t GPTImpl::num_params() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

double GPTImpl::estimate_flops() const {
  const double n_emb = double(layers_->wte.numel());
  return 6.0 * (double(num_params()) - n_emb) +
         12.0 * double(cfg_.n_layer) * double(cfg_.n_head) * double(cfg_.head_dim) * double(cfg_.seq_len);
}

std::vector<torch::Tensor> GPTImpl::matrix_params() {
  std::vector<torch::Tensor> out;
  for (const auto& l : layers_->h)
    for (const auto& w : {l.wq, l.wk, l.wv, l.wo, l.wfc, l.wproj}) out.push_back(w);
  return out;
}
std::vector<torch::Tensor> GPTImpl::embedding_params() { return {layers_->wte}; }
std::vector<torch::Tensor> GPTImpl::unembedding_params() { return {layers_->lm_head}; }

std::vector<ParamGroup> GPTImpl::param_groups() {
  ParamGroup matrix{"matrix", {}, {}}, unembedding{"unembedding", {}, {}}, embedding{"embedding", {}, {}};
  for (const auto& kv : named_parameters()) {
    const auto& p = kv.value();
    ParamGroup& g = p.is_same(layers_->wte) ? embedding : p.is_same(layers_->lm_head) ? unembedding : matrix;
    g.names.push_back(kv.key());
    g.params.push_back(p);
  }
  return {std::move(matrix), std::move(unembedding), std::move(embedding)};
}

}  // namespace kiln::model
