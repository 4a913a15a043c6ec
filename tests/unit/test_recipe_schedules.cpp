// nanochat's current schedules and scaling rules (scripts/base_train.py at 92d63d4) against their
// formulas worked by hand here: LR warmup in steps, warmdown to final_lr_frac, the Muon momentum
// 0.85 -> 0.97 -> 0.90, the cosine weight decay, the D^0.383 batch size with its sqrt(B/B_ref)
// LR scale and weight-decay scale; the muon_adamw config defaults, and V1 configs unchanged; the
// shipped v2 configs resolve to base_train.py's numbers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "core/config.h"
#include "model/lm.h"
#include "optim/optimizers.h"
#include "test_util.h"
#include "train/run_length.h"
#include "train/scaling.h"

namespace {

const char* kBase = R"(
run:
  name: t
model:
  depth: 4
  seq_len: 64
train:
  device_batch_size: 4
  total_batch_size: 1024
)";

kiln::Config load(std::vector<std::string> ov) { return kiln::load_config_text(kBase, "test.yaml", ov); }

}  // namespace

TEST(RecipeSchedules, MuonAdamWDefaultsAreNanochatsAndV1IsUnchanged) {
  const kiln::Config v1 = load({});
  EXPECT_EQ(v1.optim, kiln::OptimConfig{});  // V1: every new key at the value that keeps its math
  EXPECT_EQ(v1.optim.warmup_steps, -1);
  EXPECT_EQ(v1.optim.muon_momentum_final, -1);
  EXPECT_EQ(v1.optim.batch_lr_scale, 1.0);
  const kiln::Config c = load({"optim.recipe=muon_adamw", "optim.embedding_lr=0.25"});
  const auto& o = c.optim;
  EXPECT_EQ(o.embedding_lr, 0.25);  // a given key wins
  EXPECT_EQ(o.unembedding_lr, 0.008);
  EXPECT_EQ(o.matrix_lr, 0.02);
  EXPECT_EQ(o.scalar_lr, 0.5);
  EXPECT_EQ(o.weight_decay, 0.28);
  EXPECT_EQ(o.warmup_steps, 40);
  EXPECT_EQ(o.warmdown_ratio, 0.65);
  EXPECT_EQ(o.final_lr_frac, 0.05);
  EXPECT_EQ(o.muon_momentum_start, 0.85);
  EXPECT_EQ(o.muon_momentum_end, 0.97);
  EXPECT_EQ(o.muon_momentum_warmup, 400);
  EXPECT_EQ(o.muon_momentum_final, 0.90);
  EXPECT_EQ(o.weight_decay_schedule, "cosine");
  EXPECT_EQ(o.batch_lr_scale, -1.0);
  EXPECT_EQ(o.weight_decay_scale, -1.0);
  // The dump (checkpoint meta.json) round-trips: a resume reads these values back as given.
  EXPECT_EQ(kiln::load_config_text(kiln::to_yaml(c), "dump.yaml"), c);
  auto r = load({"optim.recipe=muon_adamw", "train.total_batch_size=-1"});
  EXPECT_EQ(r.train.total_batch_size, -1);
  EXPECT_NE(kiln::test::error_of([] { load({"train.total_batch_size=-2"}); }).find("train.total_batch_size"),
            std::string::npos);
}

TEST(RecipeSchedules, LrMomentumAndWeightDecayFollowBaseTrain) {
  kiln::Config c = load({"optim.recipe=muon_adamw"});
  auto o = c.optim;
  o.weight_decay_scale = 0.5;
  const int64_t T = 1000;  // warmup 40, warmdown round(650) from step 350
  using kiln::optim::stage_lr_multiplier;
  EXPECT_DOUBLE_EQ(stage_lr_multiplier(0, T, o), 1.0 / 40);
  EXPECT_DOUBLE_EQ(stage_lr_multiplier(39, T, o), 1.0);
  EXPECT_DOUBLE_EQ(stage_lr_multiplier(350, T, o), 1.0);
  const double p = double(T - 675) / 650;  // get_lr_multiplier's progress
  EXPECT_DOUBLE_EQ(stage_lr_multiplier(675, T, o), p + (1 - p) * 0.05);
  EXPECT_NEAR(stage_lr_multiplier(T, T, o), 0.05, 1e-15);
  using kiln::optim::muon_momentum_at;
  EXPECT_DOUBLE_EQ(muon_momentum_at(0, T, o), 0.85);
  EXPECT_DOUBLE_EQ(muon_momentum_at(200, T, o), 0.5 * 0.85 + 0.5 * 0.97);  // in the 400-step warmup
  EXPECT_DOUBLE_EQ(muon_momentum_at(400, T, o), 0.97 * (1 - 50.0 / 650) + 0.90 * (50.0 / 650));  // in the warmdown
  EXPECT_DOUBLE_EQ(muon_momentum_at(T, T, o), 0.90);
  o.warmdown_ratio = 0.2;  // warmdown from 800: flat 0.97 between warmup and warmdown
  EXPECT_DOUBLE_EQ(muon_momentum_at(600, T, o), 0.97);
  using kiln::optim::muon_weight_decay_at;
  EXPECT_DOUBLE_EQ(muon_weight_decay_at(0, T, o), 0.28 * 0.5);
  EXPECT_DOUBLE_EQ(muon_weight_decay_at(250, T, o), 0.28 * 0.5 * 0.5 * (1 + std::cos(M_PI / 4)));
  EXPECT_NEAR(muon_weight_decay_at(T, T, o), 0.0, 1e-17);
  o.weight_decay_schedule = "constant";
  EXPECT_DOUBLE_EQ(muon_weight_decay_at(T, T, o), 0.28 * 0.5);
  // V1: warmup_ratio, momentum stays at its end value, no weight-decay schedule
  const auto v1 = load({}).optim;
  EXPECT_DOUBLE_EQ(muon_momentum_at(999, T, v1), 0.95);
  EXPECT_DOUBLE_EQ(stage_lr_multiplier(0, T, v1), 1.0);
}

TEST(RecipeSchedules, BatchSizeLrAndWeightDecayScaling) {
  using kiln::train::scaling_rules;
  kiln::Config c = load({"optim.recipe=muon_adamw", "train.total_batch_size=-1", "train.target_param_data_ratio=12"});
  const int64_t ref = 100'000'000;
  // The reference itself: B_ref = 2^19, both scales 1.
  auto s = scaling_rules(c, ref, ref);
  EXPECT_EQ(s.total_batch_size, int64_t(1) << 19);
  EXPECT_DOUBLE_EQ(s.batch_lr_scale, 1.0);
  EXPECT_DOUBLE_EQ(s.weight_decay_scale, 1.0);
  // 8x the parameters: D/D_ref = 8, 2^19 * 8^0.383 = 2^20.149 -> 2^20; LR x sqrt(2); WD x sqrt(2) / 8.
  s = scaling_rules(c, 8 * ref, ref);
  EXPECT_EQ(s.total_batch_size, int64_t(1) << 20);
  EXPECT_DOUBLE_EQ(s.batch_lr_scale, std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(s.weight_decay_scale, std::sqrt(2.0) * (12.0 * ref) / std::floor(12.0 * 8 * ref));
  EXPECT_DOUBLE_EQ(s.target_tokens, 12.0 * 8 * ref);
  // 1/16 of them: 2^(19 - 4 * 0.383) = 2^17.468 -> 2^17; LR x 1/2.
  s = scaling_rules(c, ref / 16, ref);
  EXPECT_EQ(s.total_batch_size, int64_t(1) << 17);
  EXPECT_DOUBLE_EQ(s.batch_lr_scale, 0.5);
  // 64x: 2^(19 + 6 * 0.383) = 2^21.298 -> 2^21; 1/1024: 2^(19 - 10 * 0.383) = 2^15.17 -> 2^15 (an exponent
  // of 0.5 would give 2^22 and 2^14).
  EXPECT_EQ(scaling_rules(c, 64 * ref, ref).total_batch_size, int64_t(1) << 21);
  EXPECT_EQ(scaling_rules(c, ref / 1024, ref).total_batch_size, int64_t(1) << 15);
  // Every derived value can be overridden: given numbers are kept.
  c.train.total_batch_size = 1 << 18;
  c.optim.batch_lr_scale = 0.3;
  s = scaling_rules(c, 8 * ref, ref);
  EXPECT_EQ(s.total_batch_size, 1 << 18);
  EXPECT_DOUBLE_EQ(s.batch_lr_scale, 0.3);
  EXPECT_DOUBLE_EQ(s.weight_decay_scale, std::sqrt(0.5) / 8);
  // resolve_scaling writes them into the config, and refuses a batch that does not split.
  kiln::Config r = load({"optim.recipe=muon_adamw", "train.total_batch_size=-1"});
  kiln::train::resolve_scaling(r, ref, ref, 1);
  EXPECT_EQ(r.train.total_batch_size, 1 << 19);
  EXPECT_EQ(r.optim.batch_lr_scale, 1.0);
  EXPECT_EQ(r.optim.weight_decay_scale, 1.0);
  EXPECT_FALSE(kiln::train::needs_scaling(r));
  kiln::Config bad = load({"optim.recipe=muon_adamw", "train.total_batch_size=-1", "train.device_batch_size=3"});
  EXPECT_NE(kiln::test::error_of([&] { kiln::train::resolve_scaling(bad, ref, ref, 1); }).find("not a multiple"),
            std::string::npos);
}

// The reference d12 is counted on the meta device with nanochat's shape rule (V1: every parameter).
TEST(RecipeSchedules, ReferenceD12Parameters) {
  kiln::Config c = load({"model.depth=2", "model.width=96"});
  const int64_t V = 512, d = 768;
  EXPECT_EQ(kiln::train::reference_scaling_params(c, V), 12 * 12 * d * d + 2 * V * d);
}

// The shipped configs of nanochat's current recipe (configs/v2_d20, v2_d24 (the GPT-2 record's
// shape), v2_d26 and tiny_v2) load with the current model and optimizer together, and resolve at
// start as base_train.py would. Each big one is built on the meta device (no memory) and resolved
// for 8 ranks; the derived batch, LR scale, weight decay and steps are printed, and d24's are
// checked against base_train.py's formulas worked by hand from gpt.py's shapes.
TEST(RecipeSchedules, ShippedV2ConfigsResolve) {
  struct Want { const char* name; int64_t depth; double ratio; };
  for (const Want w : {Want{"v2_d20", 20, 12}, Want{"v2_d24", 24, 8}, Want{"v2_d26", 26, 12}, Want{"tiny_v2", 4, 12}}) {
    SCOPED_TRACE(w.name);
    kiln::Config c = kiln::load_config(std::string(KILN_SOURCE_DIR) + "/configs/" + w.name + ".yaml");
    const bool tiny = std::string(w.name) == "tiny_v2";
    EXPECT_EQ(c.model.arch, "nanochat2");
    EXPECT_EQ(c.model.depth, w.depth);
    EXPECT_EQ(c.model.window_pattern, "SSSL");
    EXPECT_EQ(c.train.target_param_data_ratio, w.ratio);
    EXPECT_EQ(c.train.grad_clip, 0.0);  // nanochat dropped clipping
    EXPECT_EQ(c.train.total_batch_size, tiny ? 2048 : -1);
    // The optimizer section is muon_adamw's defaults (base_train.py's, checked above) written out;
    // tiny_v2 keeps the LR / weight-decay scales at 1 (nanochat's rule spikes it).
    kiln::OptimConfig want = load({"optim.recipe=muon_adamw"}).optim;
    if (tiny) want.batch_lr_scale = want.weight_decay_scale = 1.0;
    EXPECT_EQ(c.optim.recipe, "muon_adamw");
    EXPECT_EQ(c.optim.batch_lr_scale, want.batch_lr_scale);
    EXPECT_EQ(c.optim.warmdown_ratio, 0.65);
    EXPECT_EQ(c.optim, want) << kiln::to_yaml(c);
    if (tiny) continue;  // trained for real by e2e.nanochat2
    const int64_t V = c.model.vocab_size;
    EXPECT_EQ(V, 65536);
    auto m = kiln::model::make_model(c.model, V, 0, torch::Device(torch::kMeta), kiln::model::Weights::Uninitialised);
    const int64_t n = m->num_scaling_params(), n_ref = kiln::train::reference_scaling_params(c, V);
    kiln::train::resolve_scaling(c, n, n_ref, 8);
    kiln::validate_for_world(c, 8);
    EXPECT_FALSE(kiln::train::needs_scaling(c));
    const int64_t steps = kiln::train::decide_run_steps(c, n, -1);
    auto opt = kiln::optim::make_optimizers(m->param_groups(), c.optim, m->width());
    std::printf("%s: %lld scaling params (d12 ref %lld), batch %lld tokens (%lld micro-steps on 8 ranks), %lld steps, "
                "LR scale %.6f, Muon WD %.6f, LRs:", w.name, (long long)n, (long long)n_ref,
                (long long)c.train.total_batch_size, (long long)kiln::grad_accum_steps(c, 8), (long long)steps,
                c.optim.batch_lr_scale, c.optim.weight_decay * c.optim.weight_decay_scale);
    for (const auto& [role, lr] : opt.group_lrs()) std::printf(" %s %.6g", role.c_str(), lr);
    std::printf("\n");
    if (std::string(w.name) != "v2_d24") continue;
    // By hand from gpt.py: width 1536, 12 heads of 128 (MHA); per layer 12 d^2 of matrices, and a
    // ve_gate (12 -> 12 heads) on the 12 odd layers (has_ve: i % 2 == 23 % 2); lm_head V x d.
    const int64_t d = 1536, d12 = 768;
    EXPECT_EQ(n, 24 * 12 * d * d + 12 * 12 * 12 + V * d);           // 780,142,272
    EXPECT_EQ(n_ref, 12 * 12 * d12 * d12 + 6 * 12 * 6 + V * d12);   // 135,266,736
    const double D = std::floor(8.0 * double(n)), D_ref = 8.0 * double(n_ref);
    // 2^19 x (D / D_ref)^0.383 = 2^19 x 1.956 -> 2^20 (nanochat's dev/LOG.md: d18-d26 auto batch 2^20)
    EXPECT_EQ(c.train.total_batch_size, int64_t(1) << 20);
    EXPECT_DOUBLE_EQ(c.optim.batch_lr_scale, std::sqrt(2.0));
    EXPECT_DOUBLE_EQ(c.optim.weight_decay_scale, std::sqrt(2.0) * D_ref / D);
    EXPECT_NEAR(c.optim.weight_decay * c.optim.weight_decay_scale, 0.0686578546598, 1e-12);
    EXPECT_EQ(steps, int64_t(D) / (int64_t(1) << 20));  // target_tokens // total_batch_size = 5952
    EXPECT_EQ(steps, 5952);
    EXPECT_EQ(kiln::grad_accum_steps(c, 8), 4);  // 2^20 / (8 x 16 x 2048)
    // The LRs the optimizer gets: x sqrt(2) for the batch, AdamW ones x (1536 / 768)^-0.5 for the width.
    std::map<std::string, double> lr;
    for (const auto& [role, v] : opt.group_lrs()) lr[role] = v;
    const double b = std::sqrt(2.0), dm = std::pow(2.0, -0.5);
    EXPECT_NEAR(lr["matrix"], 0.02 * b, 1e-12);
    EXPECT_NEAR(lr["embedding"], 0.3 * dm * b, 1e-12);
    EXPECT_NEAR(lr["unembedding"], 0.008 * dm * b, 1e-12);
    EXPECT_NEAR(lr["value_embedding"], 0.15 * dm * b, 1e-12);
    EXPECT_NEAR(lr["x0_lambda"], 0.5 * b, 1e-12);
    EXPECT_NEAR(lr["resid_lambda"], 0.005 * b, 1e-12);
    EXPECT_NEAR(lr["smear"], 0.2, 1e-12);
  }
}
