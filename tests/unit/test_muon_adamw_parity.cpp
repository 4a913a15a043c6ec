// optim.recipe muon_adamw against tests/reference/muon_adamw_ref.py, a transcription of nanochat's
// current MuonAdamW (optim.py), setup_optimizer's groups and base_train.py's schedules: three
// full steps through make_optimizers + set_schedule on synthetic parameter groups of every role
// (same-shape matrices that nanochat stacks, tall, wide and square ones), state carried between
// steps, every parameter and every state tensor compared after every step. Then the same
// optimizer resumed from its state and sharded by ZeRO-1 owners gives identical bits.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/safetensors.h"
#include "optim/optimizers.h"
#include "test_util.h"

using namespace kiln::optim;

namespace {

struct Spec {
  std::string name, role;
  std::vector<int64_t> shape;
};

// nanochat2's roles (model/lm.h ParamGroup), with a width of 32.
const std::vector<Spec> kSpecs = {
    {"transformer.h.0.attn.c_q.weight", "matrix", {32, 32}},
    {"transformer.h.0.mlp.c_fc.weight", "matrix", {128, 32}},   // tall
    {"transformer.h.0.mlp.c_proj.weight", "matrix", {32, 128}}, // wide
    {"transformer.h.1.attn.c_q.weight", "matrix", {32, 32}},    // stacked with h.0's by nanochat
    {"transformer.h.1.attn.ve_gate.weight", "matrix", {4, 12}},
    {"transformer.wte.weight", "embedding", {64, 32}},
    {"value_embeds.1.weight", "value_embedding", {64, 32}},
    {"lm_head.weight", "unembedding", {64, 32}},
    {"resid_lambdas", "resid_lambda", {2}},
    {"x0_lambdas", "x0_lambda", {2}},
    {"smear_gate.weight", "smear", {1, 24}},
    {"smear_lambda", "smear", {1}},
    {"backout_lambda", "smear", {1}},
};
constexpr int64_t kWidth = 32, kSteps = 3, kTotal = 3;

kiln::OptimConfig recipe() {
  kiln::OptimConfig o;
  o.recipe = "muon_adamw";
  o.matrix_lr = 0.02, o.embedding_lr = 0.3, o.unembedding_lr = 0.008, o.scalar_lr = 0.5;
  o.weight_decay = 0.28, o.weight_decay_scale = 3.0, o.batch_lr_scale = 1.5;  // big enough to see the caution
  o.warmup_steps = 1, o.warmdown_ratio = 0.65, o.final_lr_frac = 0.05;       // warmup, flat, warmdown in 3 steps
  o.muon_momentum_start = 0.85, o.muon_momentum_end = 0.97, o.muon_momentum_warmup = 1, o.muon_momentum_final = 0.90;
  o.weight_decay_schedule = "cosine";
  return o;
}

struct Model {
  std::vector<torch::Tensor> params;
  std::vector<kiln::model::ParamGroup> groups() {
    std::vector<kiln::model::ParamGroup> g;
    for (size_t i = 0; i < kSpecs.size(); ++i) {
      if (g.empty() || g.back().role != kSpecs[i].role) g.push_back({kSpecs[i].role, {}, {}});
      g.back().names.push_back(kSpecs[i].name);
      g.back().params.push_back(params[i]);
    }
    return g;
  }
};

Model copy_of(const std::vector<torch::Tensor>& p0) {
  Model m;
  for (const auto& p : p0) m.params.push_back(p.clone().requires_grad_());
  return m;
}

void set_grads(Model& m, const std::vector<std::vector<torch::Tensor>>& grads, int64_t step) {
  for (size_t i = 0; i < m.params.size(); ++i) m.params[i].mutable_grad() = grads[step][i].clone();
}

struct Data {
  std::vector<torch::Tensor> p0;
  std::vector<std::vector<torch::Tensor>> grads;
};

Data make_data() {
  Data d;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(22);
  d.grads.resize(kSteps);
  for (const auto& s : kSpecs) {
    // lambdas near their init (1, 0.1 ...), weights ~0.1, so that caution and decay both matter
    d.p0.push_back(torch::randn(s.shape, gen) * (s.role == "resid_lambda" ? 0.05 : 0.1) +
                   (s.role == "resid_lambda" ? 1.0 : 0.0));
    for (int64_t k = 0; k < kSteps; ++k) d.grads[k].push_back(torch::randn(s.shape, gen) * 0.5);
  }
  return d;
}

std::map<std::string, torch::Tensor> state_map(const Optimizers& o) {
  auto st = o.state();
  return {st.begin(), st.end()};
}

}  // namespace

TEST(MuonAdamWParity, ThreeStepsMatchNanochatReference) {
  if (!kiln::test::python_has_torch()) GTEST_SKIP() << KILN_PYTHON << " lacks torch/safetensors";
  const Data d = make_data();
  const auto o = recipe();
  const auto dir = kiln::test::temp_dir();
  kiln::model::NamedTensors in;
  nlohmann::json spec = {{"steps", kSteps}, {"total", kTotal}};
  for (size_t i = 0; i < kSpecs.size(); ++i) {
    in.emplace_back("p." + kSpecs[i].name, d.p0[i]);
    for (int64_t k = 0; k < kSteps; ++k) in.emplace_back("g." + kSpecs[i].name + ".s" + std::to_string(k), d.grads[k][i]);
    spec["names"].push_back(kSpecs[i].name);
    spec["roles"].push_back(kSpecs[i].role);
  }
  spec["hyper"] = {{"model_dim", kWidth},         {"matrix_lr", o.matrix_lr},
                   {"embedding_lr", o.embedding_lr}, {"unembedding_lr", o.unembedding_lr},
                   {"scalar_lr", o.scalar_lr},       {"weight_decay", o.weight_decay},
                   {"weight_decay_scale", o.weight_decay_scale}, {"batch_lr_scale", o.batch_lr_scale},
                   {"warmup_steps", o.warmup_steps}, {"warmdown_ratio", o.warmdown_ratio},
                   {"final_lr_frac", o.final_lr_frac}, {"momentum_start", o.muon_momentum_start},
                   {"momentum_end", o.muon_momentum_end}, {"momentum_warmup", o.muon_momentum_warmup},
                   {"momentum_final", o.muon_momentum_final}};
  kiln::model::save_safetensors(dir + "/in.safetensors", in);
  std::ofstream(dir + "/spec.json") << spec.dump();
  const std::string cmd = std::string(KILN_PYTHON) + " " + kiln::test::source_dir() +
                          "/tests/reference/muon_adamw_ref.py " + dir + "/in.safetensors " + dir + "/spec.json " + dir +
                          "/out.safetensors";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto ref = kiln::model::load_safetensors(dir + "/out.safetensors");

  Model m = copy_of(d.p0);
  auto opt = make_optimizers(m.groups(), o, kWidth);
  double worst_p = 0, worst_state = 0;
  for (int64_t k = 0; k < kSteps; ++k) {
    const std::string sk = ".s" + std::to_string(k);
    set_grads(m, d.grads, k);
    opt.set_schedule(k, kTotal, o);
    // the schedules themselves: base_train.py's lr multiplier, momentum and weight decay
    EXPECT_NEAR(stage_lr_multiplier(k, kTotal, o), ref.at("lrm" + sk).item<double>(), 1e-15) << k;
    EXPECT_NEAR(opt.muon.momentum(), ref.at("momentum" + sk).item<double>(), 1e-15) << k;
    EXPECT_NEAR(opt.muon.weight_decay(), ref.at("weight_decay" + sk).item<double>(), 1e-15) << k;
    opt.step();
    opt.zero_grad();
    auto st = state_map(opt);
    for (size_t i = 0; i < kSpecs.size(); ++i) {
      const auto& n = kSpecs[i].name;
      // the step's update (p - p0), scale-free: an error in a coefficient shows at >= 1e-2
      const double e = kiln::test::rel_err(m.params[i].detach() - d.p0[i], ref.at("p." + n + sk) - d.p0[i]);
      worst_p = std::max(worst_p, e);
      EXPECT_LT(e, 1e-5) << n << " after step " << k;
      std::vector<std::pair<std::string, std::string>> pairs;  // kiln key, reference key
      if (kSpecs[i].role == "matrix") {
        pairs = {{"muon." + n + ".momentum_buffer", "momentum_buffer." + n + sk},
                 {"muon." + n + ".second_momentum_buffer", "second_momentum_buffer." + n + sk}};
      } else {
        pairs = {{"adamw." + n + ".exp_avg", "exp_avg." + n + sk}, {"adamw." + n + ".exp_avg_sq", "exp_avg_sq." + n + sk}};
        EXPECT_EQ(st.at("adamw." + n + ".step").item<int64_t>(), ref.at("step." + n + sk).item<int64_t>()) << n;
      }
      for (const auto& [kk, rk] : pairs) {
        ASSERT_TRUE(st.count(kk)) << kk;
        ASSERT_EQ(st.at(kk).sizes(), ref.at(rk).sizes()) << kk;
        const double es = kiln::test::rel_err(st.at(kk), ref.at(rk));
        worst_state = std::max(worst_state, es);
        EXPECT_LT(es, 1e-5) << kk << " after step " << k;
      }
    }
  }
  std::cerr << "muon_adamw vs nanochat reference over " << kSteps << " steps: worst rel. error of an update "
            << worst_p << ", of a state tensor " << worst_state << "\n";
}

// Resume: three steps straight equal one step, a state round trip into fresh optimizers, two
// more; bit for bit. ZeRO-1: two owners stepping half the parameters each (then exchanging them,
// as broadcast_from_owners does) equal one optimizer stepping all.
TEST(MuonAdamWParity, ResumeAndZero1OwnersAreBitIdentical) {
  const Data d = make_data();
  const auto o = recipe();
  Model full = copy_of(d.p0);
  auto opt = make_optimizers(full.groups(), o, kWidth);
  for (int64_t k = 0; k < kSteps; ++k) set_grads(full, d.grads, k), opt.set_schedule(k, kTotal, o), opt.step();

  Model a = copy_of(d.p0);
  auto oa = make_optimizers(a.groups(), o, kWidth);
  set_grads(a, d.grads, 0), oa.set_schedule(0, kTotal, o), oa.step();
  Model b = copy_of(d.p0);
  for (size_t i = 0; i < b.params.size(); ++i) b.params[i].detach().copy_(a.params[i].detach());
  auto ob = make_optimizers(b.groups(), o, kWidth);
  ob.load_state(state_map(oa));
  for (int64_t k = 1; k < kSteps; ++k) set_grads(b, d.grads, k), ob.set_schedule(k, kTotal, o), ob.step();
  for (size_t i = 0; i < kSpecs.size(); ++i)
    EXPECT_TRUE(torch::equal(b.params[i], full.params[i])) << "resumed " << kSpecs[i].name;
  auto sf = state_map(opt), sb = state_map(ob);
  ASSERT_EQ(sf.size(), sb.size());
  for (const auto& [k, v] : sf) EXPECT_TRUE(torch::equal(v, sb.at(k))) << "resumed state " << k;

  // two owners: even and odd positions of kSpecs
  std::vector<Model> ranks{copy_of(d.p0), copy_of(d.p0)};
  std::vector<Optimizers> ropt;
  for (int r = 0; r < 2; ++r) {
    ropt.push_back(make_optimizers(ranks[r].groups(), o, kWidth));
    ropt[r].set_owner_filter([r](const std::string& n) {
      for (size_t i = 0; i < kSpecs.size(); ++i)
        if (kSpecs[i].name == n) return int(i % 2) == r;
      return false;
    });
  }
  for (int64_t k = 0; k < kSteps; ++k) {
    for (int r = 0; r < 2; ++r) set_grads(ranks[r], d.grads, k), ropt[r].set_schedule(k, kTotal, o), ropt[r].step();
    torch::NoGradGuard ng;
    for (size_t i = 0; i < kSpecs.size(); ++i) ranks[1 - int(i % 2)].params[i].copy_(ranks[i % 2].params[i]);
  }
  std::map<std::string, torch::Tensor> merged;
  for (int r = 0; r < 2; ++r)
    for (auto& [k, v] : ropt[r].state(r == 0 ? StateScope::All : StateScope::Owned)) {
      EXPECT_FALSE(merged.count(k)) << k << " written by two owners";
      merged[k] = v;
    }
  ASSERT_EQ(merged.size(), sf.size());
  for (const auto& [k, v] : sf) EXPECT_TRUE(torch::equal(v, merged.at(k))) << "ZeRO-1 state " << k;
  for (size_t i = 0; i < kSpecs.size(); ++i)
    EXPECT_TRUE(torch::equal(ranks[0].params[i], full.params[i])) << "ZeRO-1 " << kSpecs[i].name;
}

// A V1 role under muon_adamw, and an unresolved auto scale, are errors that say what to do.
TEST(MuonAdamWParity, RefusesUnknownRolesAndUnresolvedScales) {
  auto o = recipe();
  Model m = copy_of(make_data().p0);
  auto groups = m.groups();
  groups.push_back({"vector", {"ln.bias"}, {torch::zeros({4})}});
  EXPECT_NE(kiln::test::error_of([&] { make_optimizers(groups, o, kWidth); }).find("role 'vector'"), std::string::npos);
  o.batch_lr_scale = -1;
  EXPECT_NE(kiln::test::error_of([&] { make_optimizers(m.groups(), o, kWidth); }).find("unresolved"), std::string::npos);
}
