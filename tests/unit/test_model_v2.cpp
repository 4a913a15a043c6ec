// model.arch nanochat2 (nanochat's current GPT, issue 22): forward parity with a plain-PyTorch
// reference written from nanochat's gpt.py (tests/reference/gpt_v2_ref.py), greedy decoding with
// the KV cache equal to decoding without it while windows are active and past their length, and
// nanochat's window rule, value-embedding layers, parameter accounting and optimizer groups.
#include <gtest/gtest.h>

#include <cstdlib>

#include "core/config.h"
#include "model/gpt_v2.h"
#include "model/kv_cache.h"
#include "model/safetensors.h"
#include "optim/optimizers.h"
#include "parity_util.h"
#include "test_util.h"

namespace {

using kiln::model::GPTv2;
using kiln::model::GPTv2Config;

// Every feature active: 4 layers with windows 8, 8, 8, 32 over 32 tokens (SSSL, short_window 8),
// GQA (4 query heads, 2 kv heads), value embeddings on layers 1 and 3, padded vocab (100 -> 128).
kiln::ModelConfig small_config() {
  kiln::ModelConfig m;
  m.arch = "nanochat2";
  m.depth = 4;
  m.width = 64;
  m.n_head = 4;
  m.n_kv_head = 2;
  m.seq_len = 32;
  m.rope_base = 100000.0;
  m.short_window = 8;
  return m;
}

// nanochat's init zeroes the projections and starts smear at 0: random weights exercise every
// path, and the lambdas move away from their init (resid ~1, x0 ~0.2, smear and backout non-zero).
void randomise(GPTv2& model, uint64_t seed) {
  torch::NoGradGuard ng;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& p : model->named_parameters()) {
    auto& t = p.value();
    if (p.key() == "resid_lambdas") t.copy_(1.0 + 0.3 * torch::randn(t.sizes(), gen));
    else if (p.key() == "x0_lambdas") t.copy_(0.2 + 0.3 * torch::randn(t.sizes(), gen));
    else if (p.key() == "smear_lambda" || p.key() == "backout_lambda") t.copy_(0.5 + 0.3 * torch::randn(t.sizes(), gen));
    else t.normal_(0.0, 0.2, gen);
  }
}

}  // namespace

TEST(ModelV2, WindowRuleAndValueEmbeddingLayersFollowNanochat) {
  // nanochat: S = -(-seq_len // 4 // 128) * 128 = ceil(seq_len/4/128)*128 (2048 -> 512; gpt.py's
  // comment says 768, its code gives 512), L = seq_len, tiled, the last layer L.
  EXPECT_EQ(kiln::model::window_sizes("SSSL", 6, 2048, 0), (std::vector<int64_t>{512, 512, 512, 2048, 512, 2048}));
  EXPECT_EQ(kiln::model::window_sizes("SSSL", 4, 1000, 0), (std::vector<int64_t>{256, 256, 256, 1000}));
  EXPECT_EQ(kiln::model::window_sizes("SL", 2, 513, 0), (std::vector<int64_t>{256, 513}));  // -(-513//4//128)*128
  EXPECT_EQ(kiln::model::window_sizes("S", 2, 512, 0), (std::vector<int64_t>{128, 512}));
  EXPECT_EQ(kiln::model::window_sizes("SSSL", 4, 512, 0), (std::vector<int64_t>{128, 128, 128, 512}));
  EXPECT_EQ(kiln::model::window_sizes("SL", 3, 64, 16), (std::vector<int64_t>{16, 64, 64}));
  EXPECT_EQ(kiln::model::window_sizes("L", 2, 64, 0), (std::vector<int64_t>{64, 64}));
  // has_ve: alternating, the last layer always.
  std::vector<int> ve4, ve5;
  for (int i = 0; i < 4; ++i) ve4.push_back(kiln::model::has_value_embedding(i, 4));
  for (int i = 0; i < 5; ++i) ve5.push_back(kiln::model::has_value_embedding(i, 5));
  EXPECT_EQ(ve4, (std::vector<int>{0, 1, 0, 1}));
  EXPECT_EQ(ve5, (std::vector<int>{1, 0, 1, 0, 1}));
}

TEST(ModelV2, ParamGroupsMirrorNanochatsOptimizerGroups) {
  auto cfg = GPTv2Config::from(small_config(), 100);
  GPTv2 model(cfg);
  model->init_weights(1);
  std::map<std::string, std::vector<std::string>> by_role;
  size_t n = 0;
  for (const auto& g : model->param_groups()) by_role[g.role] = g.names, n += g.params.size();
  EXPECT_EQ(n, model->parameters().size());
  EXPECT_EQ(by_role["embedding"], (std::vector<std::string>{"transformer.wte.weight"}));
  EXPECT_EQ(by_role["unembedding"], (std::vector<std::string>{"lm_head.weight"}));
  EXPECT_EQ(by_role["value_embedding"], (std::vector<std::string>{"value_embeds.1.weight", "value_embeds.3.weight"}));
  EXPECT_EQ(by_role["resid_lambda"], (std::vector<std::string>{"resid_lambdas"}));
  EXPECT_EQ(by_role["x0_lambda"], (std::vector<std::string>{"x0_lambdas"}));
  auto smear = by_role["smear"];
  std::sort(smear.begin(), smear.end());
  EXPECT_EQ(smear, (std::vector<std::string>{"backout_lambda", "smear_gate.weight", "smear_lambda"}));
  // transformer.h: 6 matrices per layer plus a ve_gate on layers 1 and 3 (nanochat puts them in Muon).
  EXPECT_EQ(by_role["matrix"].size(), 4u * 6 + 2);
  EXPECT_NE(std::find(by_role["matrix"].begin(), by_role["matrix"].end(), "transformer.h.3.attn.ve_gate.weight"),
            by_role["matrix"].end());
  // The stopgap optimizer steps every role (AdamW for the new ones) and a step moves each of them.
  kiln::OptimConfig o;
  auto opt = kiln::optim::make_optimizers(model->param_groups(), o, cfg.n_embd);
  EXPECT_EQ(opt.extra_roles, (std::vector<std::string>{"value_embedding", "resid_lambda", "x0_lambda", "smear"}));
  randomise(model, 3);
  std::map<std::string, torch::Tensor> before;
  for (const auto& p : model->named_parameters()) before[p.key()] = p.value().detach().clone();
  auto idx = torch::randint(100, {2, 32}, torch::kLong);
  model->forward(idx, torch::randint(100, {2, 32}, torch::kLong)).backward();
  opt.step();
  for (const auto& p : model->named_parameters())
    EXPECT_FALSE(torch::equal(before[p.key()], p.value())) << p.key() << " was not stepped";
}

TEST(ModelParityV2, LogitsLossAndGradsMatchNanochatReference) {
  if (!kiln::test::python_has_torch()) GTEST_SKIP() << KILN_PYTHON << " lacks torch/safetensors";
  const auto m = small_config();
  const auto cfg = GPTv2Config::from(m, 100);
  ASSERT_EQ(cfg.windows, (std::vector<int64_t>{8, 8, 8, 32}));
  GPTv2 model(cfg);
  model->init_weights(5);
  randomise(model, 11);
  auto idx = torch::randint(cfg.vocab_size, {3, 32}, torch::kLong);
  auto tgt = torch::randint(cfg.vocab_size, {3, 32}, torch::kLong);
  tgt.index_put_({1, torch::indexing::Slice(28, 32)}, -1);  // ignored targets

  auto logits = model->forward(idx);
  auto per_token = model->forward_loss_per_token(idx, tgt);
  auto loss = model->forward(idx, tgt);
  loss.backward();

  std::map<std::string, std::string> meta{
      {"n_layer", std::to_string(cfg.n_layer)},       {"n_embd", std::to_string(cfg.n_embd)},
      {"n_head", std::to_string(cfg.n_head)},         {"n_kv_head", std::to_string(cfg.n_kv_head)},
      {"seq_len", std::to_string(cfg.seq_len)},       {"vocab_size", std::to_string(cfg.vocab_size)},
      {"padded_vocab_size", std::to_string(cfg.padded_vocab_size)}, {"softcap", "15.0"},
      {"rope_base", "100000.0"},                      {"window_pattern", m.window_pattern},
      {"short_window", std::to_string(m.short_window)}};
  auto ref = kiln::test::run_reference("gpt_v2_ref.py", *model, {{"idx", idx}, {"targets", tgt}}, meta);

  const double e_logits = kiln::test::rel_err(logits, ref.at("logits"));
  const double e_loss = kiln::test::rel_err(loss.detach(), ref.at("loss"));
  const double e_tok = kiln::test::rel_err(per_token, ref.at("per_token"));
  std::cerr << "rel. error logits " << e_logits << ", loss " << e_loss << ", per-token loss " << e_tok << "\n";
  EXPECT_LT(e_logits, 1e-5);
  EXPECT_LT(e_loss, 1e-5);
  EXPECT_LT(e_tok, 1e-5);
  // Gradients: same bound and reasoning as ModelParity (1e-4 of each tensor's largest entry).
  kiln::test::expect_grads_match(*model, ref, 1e-4);
  // nanochat's num_scaling_params, group by group.
  const auto counts = model->scaling_params();
  auto want = ref.at("scaling_params");
  ASSERT_EQ(counts.size(), 6u);
  for (size_t i = 0; i < counts.size(); ++i) EXPECT_EQ(counts[i].second, want[i].item<int64_t>()) << counts[i].first;
}

// Greedy decoding: the cached path (chunked prefill longer than the window, then one token at a
// time) against the uncached forward over the whole sequence, to 5x the short window and past the
// long one (seq_len); and two
// ragged rows in one batch.
TEST(ModelV2, CachedGreedyDecodingEqualsUncachedPastTheWindow) {
  torch::manual_seed(0);
  const auto cfg = GPTv2Config::from(small_config(), 100);
  GPTv2 model(cfg);
  model->init_weights(2);
  randomise(model, 7);
  torch::NoGradGuard ng;
  const int64_t window = cfg.windows[0];
  std::vector<std::vector<int64_t>> prompts{{5, 17, 3, 99, 42, 8, 8, 1, 64, 23, 11, 70}, {9, 4, 31}};
  // Sequences reach 40 tokens: 5x the short window and past the long one (seq_len 32).
  std::vector<std::vector<int64_t>> want;
  for (const auto& p : prompts) {
    auto seq = p;
    while (seq.size() < 40) {
      auto logits = model->forward(torch::tensor(seq, torch::kLong).view({1, -1}));
      seq.push_back(logits[0][-1].argmax().item<int64_t>());
    }
    want.push_back(seq);
  }
  // Cached, both prompts as ragged rows of one batch (prefill in chunks of 5 tokens).
  kiln::model::KVCache cache(model->cache_shape(), 2, 8);
  std::vector<std::vector<int64_t>> got = prompts;
  std::vector<size_t> fed(2, 0);
  torch::Tensor last_logits[2];
  for (int iter = 0; iter < 100; ++iter) {
    if (got[0].size() >= want[0].size() && got[1].size() >= want[1].size()) break;
    // A row whose tokens are all fed decodes its next one from the last logits.
    for (int b = 0; b < 2; ++b)
      if (fed[b] == got[b].size()) got[b].push_back(last_logits[b].argmax().item<int64_t>());
    std::vector<int64_t> n(2), slots{0, 1};
    auto idx = torch::zeros({2, 5}, torch::kLong);
    for (int b = 0; b < 2; ++b) {
      n[b] = std::min<int64_t>(5, int64_t(got[b].size() - fed[b]));
      for (int64_t i = 0; i < n[b]; ++i) idx[b][i] = got[b][fed[b] + i];
    }
    auto logits = model->forward_cached(idx, n, slots, cache);
    for (int b = 0; b < 2; ++b) fed[b] += n[b], last_logits[b] = logits[b];
  }
  for (int b = 0; b < 2; ++b) {
    got[b].resize(std::min(got[b].size(), want[b].size()));
    EXPECT_EQ(got[b], std::vector<int64_t>(want[b].begin(), want[b].begin() + got[b].size())) << "row " << b;
    EXPECT_GT(int64_t(got[b].size()), std::max(4 * window, cfg.seq_len)) << "row " << b << " did not decode past the windows";
  }
  // One row, one token at a time from the first: logits equal the uncached forward's at every position.
  kiln::model::KVCache c1(model->cache_shape(), 1, 4);
  const auto& seq = want[0];
  auto full = model->forward(torch::tensor(seq, torch::kLong).view({1, -1}))[0];
  double worst = 0;
  for (size_t t = 0; t < seq.size(); ++t) {
    auto l = model->forward_cached(torch::tensor({seq[t]}, torch::kLong).view({1, 1}), {1}, {0}, c1)[0];
    worst = std::max(worst, kiln::test::rel_err(l, full[t]));
  }
  std::cerr << "cached vs uncached logits, worst rel. error " << worst << "\n";
  EXPECT_LT(worst, 1e-5);
}

// The config keys of nanochat2: RoPE base 100K unless given, a pattern of S and L only, and the
// window keys refused on the other architectures (they would be silently ignored there).
TEST(ModelV2, ConfigKeysResolveAndRefuseByName) {
  const std::string base = "model:\n  depth: 2\n  seq_len: 64\n";
  auto c = kiln::load_config_text(base + "  arch: nanochat2\n", "v2.yaml");
  EXPECT_EQ(c.model.rope_base, 100000.0);
  EXPECT_EQ(c.model.window_pattern, "SSSL");
  EXPECT_EQ(kiln::load_config_text(base + "  arch: nanochat2\n  rope_base: 5000\n", "v2.yaml").model.rope_base, 5000.0);
  EXPECT_EQ(kiln::load_config_text(base + "  arch: nanochat2\n  window_pattern: ssl\n", "v2.yaml").model.window_pattern,
            "SSL");
  const auto bad = kiln::test::error_of([&] { kiln::load_config_text(base + "  arch: nanochat2\n  window_pattern: SXL\n", "v2.yaml"); });
  EXPECT_NE(bad.find("v2.yaml: model.window_pattern = \"SXL\" is not a pattern of S and L"), std::string::npos) << bad;
  const auto v1 = kiln::test::error_of([&] { kiln::load_config_text(base + "  short_window: 16\n", "v1.yaml"); });
  EXPECT_NE(v1.find("model.window_pattern / model.short_window apply to model.arch: nanochat2 (this is nanochat)"),
            std::string::npos)
      << v1;
  EXPECT_EQ(kiln::load_config_text(base, "v1.yaml").model.rope_base, 10000.0);  // V1 unchanged
}
