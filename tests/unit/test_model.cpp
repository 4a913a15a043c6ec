// Unit tests of kiln's GPT (src/model/gpt.*): shapes, parameter count and FLOPs of d20 (built on
// the meta device, no memory), init scheme, loss at init, ignore index, causality, and a CUDA
// autocast forward/backward that skips without a GPU. Parity with PyTorch: test_model_parity.cpp.
#include <gtest/gtest.h>

#include <ATen/autocast_mode.h>

#include <cmath>

#include "core/config.h"
#include "model/fused_ops.h"
#include "model/gpt.h"
#include "model/softcap_ce.h"

using kiln::model::GPT;
using kiln::model::GPTConfig;

namespace {

// Unit tests use tiny tensors: one intra-op thread avoids OpenMP barrier stalls when the 2 cores
// are shared with other jobs (measured: the resume test took 20 s with 2 threads under load,
// 0.14 s with 1). Process-wide on purpose: every test in kiln_tests benefits.
const bool kOneThread = (at::set_num_threads(1), true);

GPTConfig small_config(int64_t n_kv_head = 2) {
  kiln::ModelConfig m;
  m.depth = 2;
  m.width = 64;
  m.n_head = 4;
  m.n_kv_head = n_kv_head;
  m.seq_len = 16;
  return GPTConfig::from(m, 100);
}

}  // namespace

TEST(Model, ConfigFromDepthPadsVocab) {
  kiln::ModelConfig m;  // depth 20
  auto c = GPTConfig::from(m, 65536);
  EXPECT_EQ(c.n_embd, 1280);
  EXPECT_EQ(c.n_head, 10);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.n_kv_head, 10);
  EXPECT_EQ(c.padded_vocab_size, 65536);
  EXPECT_EQ(GPTConfig::from(m, 265).padded_vocab_size, 320);
  EXPECT_EQ(GPTConfig::from(m, 265).vocab_size, 265);
}

TEST(Model, D20ParamCountAndFlopsOnMeta) {
  kiln::ModelConfig m;  // depth 20, seq_len 2048
  GPT model(GPTConfig::from(m, 65536), torch::kMeta);
  EXPECT_EQ(model->num_params(), 560988160);  // nanochat's log (d20)
  EXPECT_NEAR(model->estimate_flops(), 3.491758e9, 1e3);
  // Muon gets the 12 * L * C^2 block matrices, AdamW the two 65536 x 1280 tables.
  int64_t n_matrix = 0;
  for (const auto& p : model->matrix_params()) n_matrix += p.numel();
  EXPECT_EQ(n_matrix, 12LL * 20 * 1280 * 1280);
  EXPECT_EQ(model->embedding_params().at(0).numel() + model->unembedding_params().at(0).numel(),
            2LL * 65536 * 1280);
}

TEST(Model, ParameterNamesAreNanochats) {
  GPT model(small_config());
  std::vector<std::string> names;
  for (const auto& p : model->named_parameters()) names.push_back(p.key());
  ASSERT_EQ(names.size(), 1u + 2 * 6 + 1);
  EXPECT_EQ(names.front(), "transformer.wte.weight");
  EXPECT_EQ(names[1], "transformer.h.0.attn.c_q.weight");
  EXPECT_EQ(names[6], "transformer.h.0.mlp.c_proj.weight");
  EXPECT_EQ(names.back(), "lm_head.weight");
  EXPECT_EQ(model->named_parameters()["transformer.h.1.attn.c_k.weight"].sizes(), (torch::IntArrayRef{32, 64}));
  // No parameter falls outside the two optimizer groups, none is in both.
  EXPECT_EQ(model->matrix_params().size() + 2, names.size());
}

TEST(Model, InitSchemeAndDeterminism) {
  kiln::ModelConfig m;
  m.depth = 2;
  m.width = 256;
  m.n_head = 2;
  m.seq_len = 8;
  GPT a(GPTConfig::from(m, 1000)), b(GPTConfig::from(m, 1000)), c(GPTConfig::from(m, 1000));
  a->init_weights(7);
  b->init_weights(7);
  c->init_weights(8);
  auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters();
  for (const auto& kv : pa) EXPECT_TRUE(torch::equal(kv.value(), pb[kv.key()])) << kv.key();
  EXPECT_FALSE(torch::equal(pa["transformer.h.0.attn.c_q.weight"], pc["transformer.h.0.attn.c_q.weight"]));
  EXPECT_EQ(pa["lm_head.weight"].abs().max().item<float>(), 0.f);
  EXPECT_EQ(pa["transformer.h.1.attn.c_proj.weight"].abs().max().item<float>(), 0.f);
  EXPECT_EQ(pa["transformer.h.1.mlp.c_proj.weight"].abs().max().item<float>(), 0.f);
  // std: wte 1; c_q (256 -> 256) 1/16; c_fc (256 -> 1024) 1/16 * min(1, 2) = 1/16. Sample sizes of
  // 256k / 65k / 262k values put the empirical std within 1% with overwhelming probability.
  EXPECT_NEAR(pa["transformer.wte.weight"].std().item<double>(), 1.0, 0.01);
  EXPECT_NEAR(pa["transformer.h.0.attn.c_q.weight"].std().item<double>(), 1.0 / 16, 0.01 / 16);
  EXPECT_NEAR(pa["transformer.h.0.mlp.c_fc.weight"].std().item<double>(), 1.0 / 16, 0.01 / 16);
}

TEST(Model, LossAtInitIsLogVocabAndIgnoreIndexWorks) {
  auto cfg = small_config();
  GPT model(cfg);
  model->init_weights(1);
  auto idx = torch::randint(cfg.vocab_size, {2, 16}, torch::kLong);
  auto tgt = torch::randint(cfg.vocab_size, {2, 16}, torch::kLong);
  // Zero head -> zero logits -> uniform over the real (unpadded) vocabulary.
  EXPECT_NEAR(model->forward(idx, tgt).item<double>(), std::log(100.0), 1e-5);
  auto logits = model->forward(idx);
  EXPECT_EQ(logits.sizes(), (torch::IntArrayRef{2, 16, 100}));
  EXPECT_EQ(logits.scalar_type(), torch::kFloat32);

  // Random weights, then compare the per-token losses with the masked mean.
  torch::NoGradGuard ng;
  for (auto& p : model->parameters()) p.normal_(0, 0.3);
  tgt.index_put_({0, torch::indexing::Slice(0, 5)}, -1);
  auto per = model->forward_loss_per_token(idx, tgt);
  EXPECT_EQ(per.sizes(), tgt.sizes());
  EXPECT_TRUE((per.masked_select(tgt == -1) == 0).all().item<bool>());
  auto mask = tgt != -1;
  EXPECT_NEAR(model->forward(idx, tgt).item<double>(),
              (per.sum() / mask.sum()).item<double>(), 1e-5);
  // The softcap bounds every logit by 15: with a head scaled so that raw logits reach far beyond
  // 15, the largest is within a hair of 15 but never above (without the softcap it would be >> 15).
  model->unembedding_params()[0].mul_(100.0);
  const float top = model->forward(idx).abs().max().item<float>();
  EXPECT_LE(top, 15.f);
  EXPECT_GT(top, 14.9f);
}

// The fused softcap + CE against the eager composition it replaces (fp32: same values and
// gradients to float rounding; measured ~1e-7), with padding columns, ignored rows, both
// reductions, a non-trivial upstream gradient and several chunks (4000 rows x 300 > 2^18).
TEST(Model, FusedSoftcapCrossEntropyMatchesEager) {
  const int64_t N = 4000, Vp = 320, V = 300;
  auto logits = (torch::randn({N, Vp}) * 20).requires_grad_();
  auto tgt = torch::randint(V, {N}, torch::kLong);
  tgt.index_put_({torch::indexing::Slice(0, N, 7)}, -1);
  auto eager = [&](at::Reduction::Reduction r) {
    auto z = logits.narrow(1, 0, V);
    return at::cross_entropy_loss(at::tanh(z / 15.0) * 15.0, tgt, {}, r, -1);
  };
  auto rel = [](const torch::Tensor& a, const torch::Tensor& b) {
    return ((a - b).abs().max() / b.abs().max()).item<double>();
  };
  for (auto red : {kiln::model::LossReduction::kMean, kiln::model::LossReduction::kNone}) {
    const bool mean = red == kiln::model::LossReduction::kMean;
    auto w = mean ? torch::tensor(1.7f) : torch::rand({N});  // upstream gradient
    auto f = kiln::model::softcap_cross_entropy(logits, tgt, V, 15.0, red);
    auto gf = torch::autograd::grad({f}, {logits}, {w})[0];
    auto e = eager(mean ? at::Reduction::Mean : at::Reduction::None);
    auto ge = torch::autograd::grad({e}, {logits}, {w})[0];
    EXPECT_LT(rel(f, e), 1e-6);
    EXPECT_LT(rel(gf, ge), 1e-5);
    EXPECT_EQ(gf.narrow(1, V, Vp - V).abs().max().item<float>(), 0.f);  // padding gets nothing
    EXPECT_EQ(gf.index({torch::indexing::Slice(0, N, 7)}).abs().max().item<float>(), 0.f);  // ignored rows
  }
  // bf16 logits (the CUDA autocast case): fp32 math inside, gradient returned as bf16.
  auto lb = logits.detach().to(torch::kBFloat16).requires_grad_();
  auto fb = kiln::model::softcap_cross_entropy(lb, tgt, V, 15.0, kiln::model::LossReduction::kMean);
  EXPECT_EQ(fb.scalar_type(), torch::kFloat32);
  fb.backward();
  EXPECT_EQ(lb.grad().scalar_type(), torch::kBFloat16);
  EXPECT_NEAR(fb.item<double>(), eager(at::Reduction::Mean).item<double>(), 1e-2);
}

TEST(Model, IsCausal) {
  auto cfg = small_config(4);
  GPT model(cfg);
  torch::NoGradGuard ng;
  for (auto& p : model->parameters()) p.normal_(0, 0.3);
  auto idx = torch::randint(cfg.vocab_size, {1, 16}, torch::kLong);
  auto idx2 = idx.clone();
  idx2.index_put_({0, 10}, (idx[0][10].item<int64_t>() + 1) % cfg.vocab_size);
  auto a = model->forward(idx), b = model->forward(idx2);
  EXPECT_TRUE(torch::equal(a.narrow(1, 0, 10), b.narrow(1, 0, 10)));
  EXPECT_FALSE(torch::allclose(a.narrow(1, 10, 6), b.narrow(1, 10, 6)));
}

TEST(Model, CudaBf16AutocastForwardBackward) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA GPU";
  auto cfg = small_config();
  GPT model(cfg);
  model->init_weights(3);
  {
    torch::NoGradGuard ng;
    for (auto& p : model->parameters()) p.normal_(0, 0.3);
  }
  auto idx = torch::randint(cfg.vocab_size, {2, 16}, torch::kLong);
  auto tgt = torch::randint(cfg.vocab_size, {2, 16}, torch::kLong);
  auto cpu_loss = model->forward(idx, tgt).item<double>();
  model->to(torch::kCUDA);
  at::autocast::set_autocast_enabled(at::kCUDA, true);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  auto loss = model->forward(idx.cuda(), tgt.cuda());
  at::autocast::set_autocast_enabled(at::kCUDA, false);
  at::autocast::clear_cache();
  EXPECT_EQ(loss.scalar_type(), torch::kFloat32);
  loss.backward();
  for (const auto& p : model->parameters()) EXPECT_TRUE(p.grad().defined());
  EXPECT_NEAR(loss.item<double>(), cpu_loss, 0.05 * cpu_loss);  // bf16 matmuls: a few % at most
}

// model/fused_ops.h: the CPU kernels against the ATen composites they replace. RMSNorm within
// fp32 rounding forward and backward (its sums run in double); rotary bit for bit, forward and
// backward, on a strided q|k view as the model feeds it and with per-row tables as decode does.
TEST(FusedOps, RmsNormMatchesAtenForwardAndBackward) {
  kiln::model::set_fused_rms_norm(true);  // the default; a checkpoint load may have changed it
  auto g = at::make_generator<at::CPUGeneratorImpl>(3);
  for (auto shape : {std::vector<int64_t>{3, 5, 64}, std::vector<int64_t>{2, 4, 3, 32}}) {
    for (double eps : {0.0, 1e-6}) {
      auto x = (torch::randn(shape, g) * 3).requires_grad_(true);
      auto x_ref = x.detach().clone().requires_grad_(true);
      auto up = torch::randn(shape, g);
      auto y = kiln::model::rms_norm(x, eps);
      ASSERT_NE(y.grad_fn(), nullptr);
      EXPECT_NE(y.grad_fn()->name().find("RmsNormCpu"), std::string::npos) << "the fused kernel did not run";
      auto y_ref = at::rms_norm(x_ref, {shape.back()}, std::nullopt, eps > 0 ? std::optional<double>(eps) : std::nullopt);
      EXPECT_TRUE(torch::allclose(y, y_ref, 1e-6, 1e-6)) << (y - y_ref).abs().max().item<double>();
      (y * up).sum().backward();
      (y_ref * up).sum().backward();
      EXPECT_TRUE(torch::allclose(x.grad(), x_ref.grad(), 1e-5, 1e-6))
          << (x.grad() - x_ref.grad()).abs().max().item<double>();
    }
  }
}

TEST(FusedOps, RotaryEqualsCompositeBitForBit) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(4);
  const int64_t B = 2, T = 5, H = 3, D = 8;
  for (int64_t table_rows : {int64_t{1}, B}) {
    auto base = torch::randn({B, T, H + 1, D}, g);
    auto cos = torch::randn({table_rows, T, 1, D / 2}, g), sin = torch::randn({table_rows, T, 1, D / 2}, g);
    auto x = base.clone().requires_grad_(true);
    auto x_ref = base.clone().requires_grad_(true);
    auto view = x.split_with_sizes({H, 1}, 2)[0];  // strided, as the model's q|k heads
    auto view_ref = x_ref.split_with_sizes({H, 1}, 2)[0];
    auto y = kiln::model::rotary(view, cos, sin);
    ASSERT_NE(y.grad_fn(), nullptr);
    EXPECT_NE(y.grad_fn()->name().find("RotaryCpu"), std::string::npos) << "the fused kernel did not run";
    const auto h = view_ref.split(D / 2, -1);
    auto y_ref = torch::cat({h[0] * cos + h[1] * sin, h[0] * (-sin) + h[1] * cos}, -1);
    EXPECT_TRUE(torch::equal(y, y_ref)) << (y - y_ref).abs().max().item<double>();
    auto up = torch::randn(y.sizes(), g);
    (y * up).sum().backward();
    (y_ref * up).sum().backward();
    EXPECT_TRUE(torch::equal(x.grad(), x_ref.grad())) << (x.grad() - x_ref.grad()).abs().max().item<double>();
  }
}

TEST(FusedOps, ReluSquaredEqualsCompositeBitForBit) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(5);
  auto base = torch::randn({4, 7, 33}, g);
  base[0][0][0] = 0.f;
  base[0][0][1] = -0.f;
  base[0][0][2] = std::numeric_limits<float>::quiet_NaN();
  auto x = base.clone().requires_grad_(true), x_ref = base.clone().requires_grad_(true);
  auto y = kiln::model::relu_squared(x);
  ASSERT_NE(y.grad_fn(), nullptr);
  auto r = at::relu(x_ref);
  auto y_ref = r * r;
  EXPECT_TRUE(torch::equal(y.nan_to_num(-1), y_ref.nan_to_num(-1)));
  EXPECT_TRUE(std::isnan(y[0][0][2].item<float>())) << "NaN must propagate, as at::relu's";
  auto up = torch::randn(y.sizes(), g);
  (y * up).nansum().backward();
  (y_ref * up).nansum().backward();
  EXPECT_TRUE(torch::equal(x.grad().nan_to_num(-1), x_ref.grad().nan_to_num(-1)));
}
