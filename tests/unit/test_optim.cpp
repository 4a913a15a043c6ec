// Unit tests of src/optim: nanochat's LR and momentum schedules, the width rule for AdamW lrs,
// Muon's update being (nearly) orthogonal, the optimizer groups of make_optimizers, and exact
// resume: save model + optimizer state, reload into fresh objects, continue -> bit-identical (CPU).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "core/error.h"
#include "dist/zero1.h"
#include "model/gpt.h"
#include "ckpt/copy_into.h"  // load_safetensors_into
#include "model/safetensors.h"
#include "optim/optimizers.h"
#include "test_util.h"

using namespace kiln::optim;

TEST(Optim, LrMultiplierSchedule) {
  // 100 steps, no warmup, warmdown over the last 20: 1.0 through step 80, then linear to final.
  EXPECT_DOUBLE_EQ(lr_multiplier(0, 100, 0.0, 0.2, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(80, 100, 0.0, 0.2, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(90, 100, 0.0, 0.2, 0.0), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(100, 100, 0.0, 0.2, 0.0), 0.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(90, 100, 0.0, 0.2, 0.1), 0.55);
  // Warmup over 10 steps: (step+1)/10.
  EXPECT_DOUBLE_EQ(lr_multiplier(0, 100, 0.1, 0.2, 0.0), 0.1);
  EXPECT_DOUBLE_EQ(lr_multiplier(9, 100, 0.1, 0.2, 0.0), 1.0);
  // Monotone non-increasing after warmup.
  for (int s = 10; s < 100; ++s) EXPECT_GE(lr_multiplier(s, 100, 0.1, 0.2, 0.0), lr_multiplier(s + 1, 100, 0.1, 0.2, 0.0));
}

TEST(Optim, MuonMomentumWarmupAndWidthScale) {
  EXPECT_DOUBLE_EQ(muon_momentum(0, 0.85, 0.95, 300), 0.85);
  EXPECT_NEAR(muon_momentum(150, 0.85, 0.95, 300), 0.90, 1e-15);
  EXPECT_DOUBLE_EQ(muon_momentum(300, 0.85, 0.95, 300), 0.95);
  EXPECT_DOUBLE_EQ(muon_momentum(5000, 0.85, 0.95, 300), 0.95);
  EXPECT_DOUBLE_EQ(adamw_lr_scale(768), 1.0);
  EXPECT_NEAR(adamw_lr_scale(1280), 0.7745966692, 1e-9);  // nanochat d20
}

TEST(Optim, MuonUpdateIsNearlyOrthogonalAndAspectScaled) {
  // With zero momentum history and momentum 0 the update is NS(grad) * lr * sqrt(max(1, r/c)).
  // The quintic iteration pushes every singular value into roughly [0.7, 1.2] (it trades exact
  // orthogonality for speed), so check that band: a raw gradient's spread is far wider.
  auto p = torch::zeros({128, 32}, torch::requires_grad());
  auto g = torch::randn({128, 32}) * torch::linspace(1, 10, 32);  // column scales spread 10x
  p.mutable_grad() = g.clone();
  Muon muon({p}, /*lr=*/0.5, /*momentum=*/0.0);
  muon.step();
  const double scale = 0.5 * 2.0;  // sqrt(128/32) = 2
  auto sv = torch::linalg_svdvals(-p.detach() / scale);
  std::cerr << "singular values of the Muon update: " << sv.min().item<double>() << " .. " << sv.max().item<double>() << "\n";
  EXPECT_GT(sv.min().item<double>(), 0.6);
  EXPECT_LT(sv.max().item<double>(), 1.25);
  EXPECT_EQ(muon.steps(), 1);
}

TEST(Optim, MakeOptimizersGroupsAndLrs) {
  kiln::ModelConfig m;
  m.depth = 2;
  m.width = 192;
  m.n_head = 2;
  m.seq_len = 8;
  kiln::model::GPT model(kiln::model::GPTConfig::from(m, 70));
  kiln::OptimConfig o;
  auto opt = make_optimizers(model->param_groups(), o, model->width());
  EXPECT_EQ(opt.muon.params().size(), 12u);
  EXPECT_DOUBLE_EQ(opt.adamw.lr(0), 0.004 * 2.0);  // (192/768)^-0.5 = 2, lm_head group first
  EXPECT_DOUBLE_EQ(opt.adamw.lr(1), 0.2 * 2.0);
  opt.set_schedule(300, 300, o);  // last step: warmdown to 0, momentum warmup (300) done
  EXPECT_DOUBLE_EQ(opt.adamw.lr(1), 0.0);
  EXPECT_DOUBLE_EQ(opt.muon.lr(), 0.0);
  EXPECT_DOUBLE_EQ(opt.muon.momentum(), 0.95);
  opt.set_schedule(0, 100, o);
  EXPECT_DOUBLE_EQ(opt.muon.momentum(), 0.85);
  EXPECT_DOUBLE_EQ(opt.muon.lr(), 0.02);
}

namespace {

kiln::model::GPTConfig resume_config() {
  kiln::ModelConfig m;
  m.depth = 2;
  m.width = 64;
  m.n_head = 2;
  m.seq_len = 16;
  return kiln::model::GPTConfig::from(m, 50);
}

// One training step of the model + both optimizers on the batch of `step`, with the schedule.
void train_step(kiln::model::GPT& model, Optimizers& opt, int64_t step, const kiln::OptimConfig& o) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1000 + step);
  auto idx = torch::randint(50, {4, 16}, gen, torch::kLong);
  auto tgt = torch::randint(50, {4, 16}, gen, torch::kLong);
  model->forward(idx, tgt).backward();
  opt.set_schedule(step, 8, o);
  opt.step();
  opt.zero_grad();
}

}  // namespace

TEST(Optim, SaveLoadResumeIsBitIdentical) {
  kiln::OptimConfig o;
  o.warmup_ratio = 0.25;  // every schedule phase within 8 steps
  o.weight_decay = 0.01;
  o.muon_momentum_warmup = 4;
  const auto dir = kiln::test::temp_dir();
  // Uninterrupted run of 8 steps.
  kiln::model::GPT a(resume_config());
  a->init_weights(3);
  auto oa = make_optimizers(a->param_groups(), o, a->width());
  for (int64_t s = 0; s < 8; ++s) {
    train_step(a, oa, s, o);
    if (s == 3) {  // checkpoint after step 3 via files, as the trainer does
      kiln::model::save_safetensors(dir + "/model.safetensors", kiln::model::named_parameters_of(*a));
      kiln::model::save_safetensors(dir + "/optim.safetensors", oa.state());
    }
  }
  // Resumed run: fresh objects (different init), load both files, steps 4..7.
  kiln::model::GPT b(resume_config());
  b->init_weights(99);
  auto ob = make_optimizers(b->param_groups(), o, b->width());
  kiln::ckpt::load_safetensors_into(dir + "/model.safetensors", kiln::model::named_parameters_of(*b));
  ob.load_state(kiln::model::load_safetensors(dir + "/optim.safetensors"));
  EXPECT_EQ(ob.muon.steps(), 4);
  for (int64_t s = 4; s < 8; ++s) train_step(b, ob, s, o);
  for (const auto& p : a->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), b->named_parameters()[p.key()])) << p.key();
  // The state itself continues identically (step counters, buffers).
  auto sa = oa.state(), sb = ob.state();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].first, sb[i].first);
    EXPECT_TRUE(torch::equal(sa[i].second, sb[i].second)) << sa[i].first;
  }
}

TEST(Optim, LoadStateRejectsAnotherModel) {
  kiln::OptimConfig o;
  kiln::model::GPT a(resume_config());
  a->init_weights(1);
  auto oa = make_optimizers(a->param_groups(), o, a->width());
  train_step(a, oa, 0, o);
  auto st = oa.state();
  std::map<std::string, torch::Tensor> map(st.begin(), st.end());
  kiln::ModelConfig m;
  m.depth = 3;  // one more layer -> more Muon params
  m.width = 64;
  m.n_head = 2;
  m.seq_len = 16;
  kiln::model::GPT c(kiln::model::GPTConfig::from(m, 50));
  auto oc = make_optimizers(c->param_groups(), o, c->width());
  EXPECT_THROW(oc.load_state(map), kiln::Error);
  map.erase("adamw.lm_head.weight.exp_avg");
  auto ob = make_optimizers(a->param_groups(), o, a->width());
  EXPECT_THROW(ob.load_state(map), kiln::Error);
}

// Issue 14: state keyed by parameter name, and ZeRO-1's split of it. Two optimizers that each own
// half of the parameters (dist::partition_params) and step the same model together are exactly
// the full optimizer: same weights, and their Owned states plus rank 0's Shared scalars are the
// full state, key for key, bit for bit; loaded into a fresh full optimizer (a resume on 1 rank)
// or into two new shards (a resume on 2), training continues bit-identically.
TEST(Optim, StateByNameAndZero1ShardsEqualTheFullOptimizer) {
  kiln::OptimConfig o;
  o.weight_decay = 0.01;
  kiln::model::GPT a(resume_config()), b(resume_config());
  a->init_weights(3);
  b->init_weights(3);
  auto full = make_optimizers(a->param_groups(), o, a->width());
  std::vector<int64_t> numels;
  for (const auto& p : b->parameters()) numels.push_back(p.numel());
  const auto owner = kiln::dist::partition_params(numels, 2);
  const auto elems = kiln::dist::owned_elements(numels, owner, 2);
  EXPECT_LE(std::abs(elems[0] - elems[1]), *std::max_element(numels.begin(), numels.end())) << "unbalanced";
  std::map<std::string, int> owner_of;
  const auto named = b->named_parameters();
  for (size_t i = 0; i < named.size(); ++i) owner_of[named[i].key()] = owner[i];
  auto shards = [&](kiln::model::GPT& m) {
    std::vector<Optimizers> s;
    for (int r = 0; r < 2; ++r) {
      s.push_back(make_optimizers(m->param_groups(), o, m->width()));
      s.back().set_owner_filter([&, r](const std::string& n) { return owner_of.at(n) == r; });
    }
    return s;
  };
  auto sh = shards(b);
  auto step_shards = [&](kiln::model::GPT& m, std::vector<Optimizers>& s, int64_t step) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(1000 + step);
    auto idx = torch::randint(50, {4, 16}, gen, torch::kLong), tgt = torch::randint(50, {4, 16}, gen, torch::kLong);
    m->forward(idx, tgt).backward();
    for (auto& x : s) x.set_schedule(step, 8, o), x.step();
    s[0].zero_grad();
  };
  for (int64_t s = 0; s < 3; ++s) train_step(a, full, s, o), step_shards(b, sh, s);
  for (const auto& p : a->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), b->named_parameters()[p.key()])) << p.key();
  EXPECT_LT(sh[0].state_bytes(), full.state_bytes());
  EXPECT_EQ(sh[0].state_bytes() + sh[1].state_bytes(), full.state_bytes());
  // Keys are names; the shards' tensors are disjoint and together the full state.
  auto fs = full.state();
  std::map<std::string, torch::Tensor> want(fs.begin(), fs.end()), got;
  EXPECT_TRUE(want.count("muon.transformer.h.0.attn.c_q.weight.momentum_buffer")) << "state is not keyed by name";
  EXPECT_TRUE(want.count("adamw.lm_head.weight.exp_avg_sq")) << "state is not keyed by name";
  for (int r = 0; r < 2; ++r)
    for (auto& [k, v] : sh[r].state(r == 0 ? kiln::optim::StateScope::All : kiln::optim::StateScope::Owned))
      EXPECT_TRUE(got.emplace(k, v).second) << k << " written twice";
  ASSERT_EQ(got.size(), want.size());
  for (auto& [k, v] : want) {
    ASSERT_TRUE(got.count(k)) << k;
    EXPECT_TRUE(torch::equal(got.at(k), v)) << k;
  }
  // Resume the merged state on "1 rank" (a full optimizer) and on "2 ranks" (new shards).
  kiln::model::GPT c(resume_config()), d(resume_config());
  for (auto* m : {&c, &d}) {
    torch::NoGradGuard ng;
    for (const auto& p : a->named_parameters()) (*m)->named_parameters()[p.key()].copy_(p.value());
  }
  auto one = make_optimizers(c->param_groups(), o, c->width());
  one.load_state(got);
  auto two = shards(d);
  for (auto& x : two) x.load_state(got);
  for (int64_t s = 3; s < 6; ++s) train_step(a, full, s, o), train_step(c, one, s, o), step_shards(d, two, s);
  for (const auto& p : a->named_parameters()) {
    EXPECT_TRUE(torch::equal(p.value(), c->named_parameters()[p.key()])) << "1-rank resume " << p.key();
    EXPECT_TRUE(torch::equal(p.value(), d->named_parameters()[p.key()])) << "2-shard resume " << p.key();
  }
  // A position-keyed state (format 1) is refused by name.
  std::map<std::string, torch::Tensor> old = want;
  old["muon.0.momentum_buffer"] = torch::zeros({64, 64});
  EXPECT_THROW(one.load_state(old), kiln::Error);
}
