// FP8 training math (model/fp8.*) on the CPU, where torch has the float8 dtypes and a CPU
// at::_scaled_mm: the scale from amax, saturation, the quantisation error of each format, the
// scaled GEMM against its emulation (exact) and fp32 (within the formats' precision), the
// autograd function's three GEMMs, the model hook, the train.fp8 refusals. On CUDA: test_gpu.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/config.h"
#include "core/error.h"
#include "model/fp8.h"
#include "model/gpt.h"
#include "optim/optimizers.h"
#include "test_util.h"

namespace fp8 = kiln::model::fp8;
using kiln::test::error_of;
using kiln::test::rel_fro;

namespace {

const bool kOneThread = (at::set_num_threads(1), true);

// The dequantised value of a Quantized, in fp32.
torch::Tensor dequant(const fp8::Quantized& q) { return q.data.to(torch::kFloat32) * q.inv_scale; }

}  // namespace

TEST(Fp8, ScaleMapsAmaxOntoTheFormatsMaximum) {
  // 448 / 2 and 57344 / 2, exactly; the scale is fp32 and 0-dim (what _scaled_mm takes).
  auto s = fp8::scale_from_amax(torch::tensor(2.0f), torch::kFloat8_e4m3fn);
  EXPECT_EQ(s.scalar_type(), torch::kFloat32);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item<float>(), 224.0f);
  EXPECT_EQ(fp8::scale_from_amax(torch::tensor(2.0f), torch::kFloat8_e5m2).item<float>(), 28672.0f);
  // Divided in double, then rounded once to fp32 (nanochat/torchao), not divided in fp32.
  EXPECT_EQ(fp8::scale_from_amax(torch::tensor(3.0f), torch::kFloat8_e4m3fn).item<float>(), float(448.0 / 3.0));
  // An all-zero tensor: a finite scale (448 / 1e-12), so quantising zeros gives zeros, not NaN.
  auto z = fp8::quantize(torch::zeros({4, 4}), torch::kFloat8_e4m3fn);
  EXPECT_TRUE(std::isfinite(z.inv_scale.item<float>()));
  EXPECT_EQ(dequant(z).abs().max().item<float>(), 0.f);
  EXPECT_THROW(fp8::scale_from_amax(torch::tensor(1.0f), torch::kBFloat16), c10::Error);
}

TEST(Fp8, SaturatesWhereAPlainCastOverflows) {
  auto big = torch::tensor({1000.0f, -1000.0f, 3.0f});
  // A plain cast: e4m3fn has no infinity, 1000 becomes NaN; e5m2 turns 1e6 into Inf.
  EXPECT_TRUE(std::isnan(big.to(torch::kFloat8_e4m3fn).to(torch::kFloat32)[0].item<float>()));
  EXPECT_TRUE(std::isinf(torch::tensor(1e6f).to(torch::kFloat8_e5m2).to(torch::kFloat32).item<float>()));
  auto s = fp8::saturate_cast(big, torch::kFloat8_e4m3fn);
  EXPECT_EQ(s.scalar_type(), torch::kFloat8_e4m3fn);
  EXPECT_TRUE(torch::equal(s.to(torch::kFloat32), torch::tensor({448.0f, -448.0f, 3.0f})));
  auto s5 = fp8::saturate_cast(torch::tensor({1e6f, -1e6f}), torch::kFloat8_e5m2);
  EXPECT_TRUE(torch::equal(s5.to(torch::kFloat32), torch::tensor({57344.0f, -57344.0f})));
}

// Round to nearest: relative error at most half an ulp, 2^-4 for e4m3 (3 mantissa bits) and 2^-3
// for e5m2 (2 bits), for every value in the normal range after scaling (subnormals: absolute).
TEST(Fp8, QuantisationErrorIsHalfAnUlpOfEachFormat) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(3);
  auto x = torch::randn({64, 96}, g) * 5.0;
  struct Case {
    c10::ScalarType dt;
    double half_ulp, min_normal;
  };
  for (const Case& c : {Case{torch::kFloat8_e4m3fn, 1.0 / 16, std::ldexp(1.0, -6)},
                        Case{torch::kFloat8_e5m2, 1.0 / 8, std::ldexp(1.0, -14)}}) {
    auto q = fp8::quantize(x, c.dt);
    EXPECT_EQ(q.data.scalar_type(), c.dt);
    EXPECT_EQ(q.data.sizes(), x.sizes());
    const double inv = q.inv_scale.item<double>();
    // The largest magnitude lands on the format's maximum exactly.
    EXPECT_NEAR(q.data.to(torch::kFloat32).abs().max().item<double>() * inv, x.abs().max().item<double>(),
                1e-6 * x.abs().max().item<double>());
    auto err = (dequant(q) - x).abs().to(torch::kDouble);
    auto bound = torch::maximum(x.abs().to(torch::kDouble) * c.half_ulp, torch::full_like(err, c.min_normal * inv));
    EXPECT_TRUE((err <= bound * (1 + 1e-4)).all().item<bool>()) << c10::toString(c.dt);
  }
}

// The scaled GEMM (at::_scaled_mm's CPU kernel) against (a.data * inv_a) @ (b.data * inv_b) in
// fp32: the products of float8 values are exact in fp32, so only the summation order differs.
// Against the fp32 GEMM of the unquantised operands: e4m3 x e4m3 within 5% (Frobenius; about 3.8%
// for Gaussian operands), e5m2 x e4m3 (the backward's) within 9% (about 5.9%).
TEST(Fp8, ScaledMmEqualsItsEmulationAndTracksFp32) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(5);
  auto a = torch::randn({64, 256}, g), b = torch::randn({128, 256}, g);
  auto qa = fp8::quantize(a, torch::kFloat8_e4m3fn), qb = fp8::quantize(b, torch::kFloat8_e4m3fn);
  auto y = fp8::scaled_mm(qa, {qb.data.t(), qb.inv_scale}, torch::kFloat32, false);
  auto emulated = torch::matmul(dequant(qa), dequant(qb).t());
  EXPECT_LT(rel_fro(y, emulated), 1e-6);
  const double e43 = rel_fro(y, torch::matmul(a, b.t()));
  EXPECT_LT(e43, 0.05);
  EXPECT_GT(e43, 1e-3);  // it really ran in FP8
  auto qa5 = fp8::quantize(a, torch::kFloat8_e5m2);
  EXPECT_LT(rel_fro(fp8::scaled_mm(qa5, {qb.data.t(), qb.inv_scale}, torch::kFloat32, false), torch::matmul(a, b.t())),
            0.09);
  // bf16 output: the same result rounded to bf16 (8 bits: within 2^-8 relative).
  auto yb = fp8::scaled_mm(qa, {qb.data.t(), qb.inv_scale}, torch::kBFloat16, true);
  EXPECT_EQ(yb.scalar_type(), torch::kBFloat16);
  EXPECT_LT(rel_fro(yb, emulated), 1.0 / 256);
}

// fp8::linear's forward and both gradients (the autograd function's three GEMMs) against fp32
// at::linear, with an upstream gradient of a different scale than the output (e5m2's range).
TEST(Fp8, LinearForwardAndBackwardTrackFp32) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(7);
  auto x = torch::randn({2, 32, 256}, g).requires_grad_();
  auto w = (torch::randn({384, 256}, g) / 16).requires_grad_();
  auto up = torch::randn({2, 32, 384}, g) * 1e-3;
  auto y = fp8::linear(x, w);
  EXPECT_EQ(y.sizes(), (torch::IntArrayRef{2, 32, 384}));
  EXPECT_EQ(y.scalar_type(), torch::kFloat32);
  auto gx = torch::autograd::grad({y}, {x, w}, {up});
  auto x2 = x.detach().clone().requires_grad_(), w2 = w.detach().clone().requires_grad_();
  auto y2 = at::linear(x2, w2);
  auto gr = torch::autograd::grad({y2}, {x2, w2}, {up});
  EXPECT_LT(rel_fro(y, y2), 0.05);        // e4m3 x e4m3 (see above)
  EXPECT_LT(rel_fro(gx[0], gr[0]), 0.09);  // e5m2 x e4m3
  EXPECT_LT(rel_fro(gx[1], gr[1]), 0.09);
  EXPECT_EQ(gx[1].scalar_type(), torch::kFloat32);  // the master weight's dtype
  // The weight gradient is exactly the e5m2(grad)^T @ e4m3(x) product of the emulation.
  auto qg = fp8::quantize(up.reshape({-1, 384}), torch::kFloat8_e5m2);
  auto qx = fp8::quantize(x.detach().reshape({-1, 256}), torch::kFloat8_e4m3fn);
  EXPECT_LT(rel_fro(gx[1], torch::matmul(dequant(qg).t(), dequant(qx))), 1e-6);
}

TEST(Fp8, EligibilityIsNanochatsFilter) {
  EXPECT_TRUE(fp8::eligible(128, 128));
  EXPECT_TRUE(fp8::eligible(65536, 1280));
  EXPECT_FALSE(fp8::eligible(64, 256));   // smaller side < 128
  EXPECT_FALSE(fp8::eligible(264, 256));  // not a multiple of 16
  EXPECT_FALSE(fp8::eligible(256, 136));
}

// The model hook: nothing changes without a Guard, or for a model whose linears are all too small;
// with a Guard and eligible shapes the loss moves by FP8's error (not zero, not more than 2%), and
// the guard ends with its scope.
TEST(Fp8, GuardRoutesTheModelsEligibleLinears) {
  kiln::ModelConfig m;
  m.depth = 2;
  m.width = 128;
  m.n_head = 1;
  m.seq_len = 16;
  for (int64_t width : {128, 64}) {
    m.width = width;
    kiln::model::GPT model(kiln::model::GPTConfig::from(m, 256));
    torch::NoGradGuard ng;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
    for (auto& p : model->parameters()) p.normal_(0.0, 1.0 / std::sqrt(double(p.size(-1))), gen);
    auto idx = torch::randint(256, {2, 16}, gen, torch::kLong), tgt = torch::randint(256, {2, 16}, gen, torch::kLong);
    const double plain = model->forward(idx, tgt).item<double>();
    double with_fp8 = 0;
    {
      fp8::Guard on(true);
      EXPECT_TRUE(fp8::enabled());
      fp8::Guard nested(false);  // a Guard(false) inside does not turn it off
      EXPECT_TRUE(fp8::enabled());
      with_fp8 = model->forward(idx, tgt).item<double>();
    }
    EXPECT_FALSE(fp8::enabled());
    EXPECT_EQ(model->forward(idx, tgt).item<double>(), plain);
    if (width == 64) {
      EXPECT_EQ(with_fp8, plain);  // every linear is below 128: none goes to FP8
    } else {
      EXPECT_NE(with_fp8, plain);
      EXPECT_NEAR(with_fp8, plain, 0.02 * plain);
    }
  }
}

TEST(Fp8, TrainFp8IsRefusedWhereItCannotRun) {
  auto e = error_of([] { fp8::check_supported(torch::kCPU); });
  EXPECT_NE(e.find("train.fp8 = true needs a CUDA GPU"), std::string::npos) << e;
  EXPECT_NE(e.find("this run is on cpu"), std::string::npos) << e;
  EXPECT_NE(e.find("hint: set train.fp8=false"), std::string::npos) << e;
  // The config key: a boolean, and only for the nanochat architecture (its model holds the hook).
  auto load = [](const std::string& yaml) { return kiln::load_config_text(yaml, "t.yaml"); };
  EXPECT_TRUE(load("train:\n  fp8: true\n").train.fp8);
  EXPECT_FALSE(load("model:\n  depth: 2\n").train.fp8);
  EXPECT_NE(error_of([&] { load("train:\n  fp8: maybe\n"); }).find("train.fp8"), std::string::npos);
  auto g = error_of([&] { load("model:\n  arch: gpt2\n  size: gpt2\ntrain:\n  fp8: true\n"); });
  EXPECT_NE(g.find("t.yaml: train.fp8 = true applies to model.arch: nanochat (this is gpt2)"), std::string::npos) << g;
}

// Ten optimizer steps (Muon + AdamW) of a small model with every linear in FP8 against the same
// steps in fp32: the loss curves agree within 2% at every step (the GPU test Gpu.Fp8* states the
// same bound for bf16 on CUDA); measured here at most 0.2%.
TEST(Fp8, TrainingStepsTrackFp32) {
  kiln::ModelConfig m;
  m.depth = 2;
  m.width = 128;
  m.n_head = 1;
  m.seq_len = 32;
  std::vector<double> losses[2];
  for (int use_fp8 = 0; use_fp8 < 2; ++use_fp8) {
    kiln::model::GPT model(kiln::model::GPTConfig::from(m, 256));
    model->init_weights(3);
    kiln::OptimConfig oc;
    auto opt = kiln::optim::make_optimizers(model->param_groups(), oc, model->width());
    auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
    for (int64_t i = 0; i < 10; ++i) {
      auto idx = torch::randint(256, {2, 32}, gen, torch::kLong), tgt = torch::randint(256, {2, 32}, gen, torch::kLong);
      torch::Tensor loss;
      {
        fp8::Guard g(use_fp8 == 1);
        loss = model->forward(idx, tgt);
      }
      loss.backward();
      opt.set_schedule(i, 100, oc);
      opt.step();
      opt.zero_grad();
      losses[use_fp8].push_back(loss.item<double>());
    }
  }
  double worst = 0;
  for (size_t i = 0; i < losses[0].size(); ++i) {
    worst = std::max(worst, std::abs(losses[1][i] - losses[0][i]) / losses[0][i]);
    EXPECT_NEAR(losses[1][i], losses[0][i], 0.02 * losses[0][i]) << "step " << i;
  }
  EXPECT_NE(losses[1].back(), losses[0].back());  // FP8 really ran
  std::printf("FP8 vs fp32 over 10 steps: worst relative loss difference %.5f\n", worst);
}
