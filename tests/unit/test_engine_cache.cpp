// The KV cache and engine::Generator against the uncached model (issue 10): logits within 1e-5
// (fp32, CPU) at every step and identical greedy ids, for batch 1 and a ragged batch of 8; chunked
// prefill (prefix + causal mask); a row's sampled output is the same alone or among other rows;
// a freed slot is reused while other rows continue; the tool state machine forces calculator output.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "engine/generator.h"
#include "engine/sampler.h"
#include "model/gpt.h"
#include "model/kv_cache.h"
#include "tokenizer/tokenizer.h"

using kiln::engine::Generator;
using kiln::engine::SamplingOptions;
using kiln::model::GPT;
using kiln::model::KVCache;

namespace {

const bool kOneThread = (at::set_num_threads(1), true);

// A byte-level tokenizer (256 bytes + 9 specials) and a small GQA model with random weights
// everywhere (nanochat's init zeroes the head, which would make every logit 0).
struct Fixture {
  std::shared_ptr<const kiln::tok::Tokenizer> tok =
      std::make_shared<const kiln::tok::Tokenizer>(kiln::tok::Tokenizer::from_merges({}));
  GPT model{nullptr};
  Fixture() {
    kiln::ModelConfig m;
    m.depth = 2;
    m.width = 64;
    m.n_head = 4;
    m.n_kv_head = 2;
    m.seq_len = 16;  // rotary table: 160 positions
    model = GPT(kiln::model::GPTConfig::from(m, tok->vocab_size()));
    torch::NoGradGuard ng;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
    for (auto& p : model->parameters()) p.normal_(0.0, 1.0 / std::sqrt(double(p.size(-1))), gen);
    model->eval();
  }
};

std::vector<int64_t> random_prompt(int64_t len, int64_t seed) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto t = torch::randint(0, 256, {len}, g, torch::kInt64);
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + len);
}

torch::Tensor uncached_last_logits(GPT& model, const std::vector<int64_t>& seq) {
  torch::NoGradGuard ng;
  auto idx = torch::tensor(seq, torch::kInt64).view({1, -1});
  return model->forward(idx).index({0, -1});
}

// Greedy decoding of every prompt in one cached batch, checking each row's logits against the
// uncached forward of that row alone at every step. Returns the generated ids per row.
std::vector<std::vector<int64_t>> check_cached_greedy(GPT& model, const std::vector<std::vector<int64_t>>& prompts,
                                                      int steps, double* worst) {
  torch::NoGradGuard ng;
  const int64_t B = static_cast<int64_t>(prompts.size());
  KVCache cache(model->cache_shape(), B, 4);  // tiny capacity: growth is exercised too
  std::vector<std::vector<int64_t>> seqs = prompts, out(B);
  std::vector<int64_t> slots(B), n(B);
  int64_t T = 0;
  for (int64_t b = 0; b < B; ++b) slots[b] = b, n[b] = static_cast<int64_t>(prompts[b].size()), T = std::max(T, n[b]);
  std::vector<int64_t> flat(static_cast<size_t>(B * T), 0);
  for (int64_t b = 0; b < B; ++b) std::copy(prompts[b].begin(), prompts[b].end(), flat.begin() + b * T);
  auto logits = model->forward_cached(torch::tensor(flat).view({B, T}), n, slots, cache);
  for (int s = 0; s < steps; ++s) {
    std::vector<int64_t> next(B);
    for (int64_t b = 0; b < B; ++b) {
      auto ref = uncached_last_logits(model, seqs[b]);
      *worst = std::max(*worst, (logits[b] - ref).abs().max().item<double>());
      next[b] = ref.argmax().item<int64_t>();
      EXPECT_EQ(logits[b].argmax().item<int64_t>(), next[b]) << "row " << b << " step " << s;
      seqs[b].push_back(next[b]);
      out[b].push_back(next[b]);
      EXPECT_EQ(cache.length(b), static_cast<int64_t>(seqs[b].size()) - 1);
    }
    logits = model->forward_cached(torch::tensor(next).view({B, 1}), std::vector<int64_t>(B, 1), slots, cache);
  }
  return out;
}

std::vector<std::vector<int64_t>> ragged_prompts() {
  std::vector<std::vector<int64_t>> p;
  for (int64_t i = 0; i < 8; ++i) p.push_back(random_prompt(1 + (i * 5) % 13, 100 + i));  // lengths 1..13
  return p;
}

}  // namespace

TEST(EngineCache, CachedEqualsUncachedBatch1) {
  Fixture f;
  double worst = 0;
  auto ids = check_cached_greedy(f.model, {random_prompt(6, 1)}, 40, &worst);
  std::printf("batch 1, 40 steps: max |cached - uncached| logit = %.3g\n", worst);
  EXPECT_LT(worst, 1e-5);
  // The Generator's greedy ids are the uncached greedy ids.
  SamplingOptions o;
  o.temperature = 0;
  o.max_new_tokens = 40;
  o.stop_tokens = {-1};  // never stops early: compare all 40
  auto r = Generator(f.model.ptr(), f.tok).generate({random_prompt(6, 1)}, {o});
  EXPECT_EQ(r[0].ids, ids[0]);
  EXPECT_EQ(r[0].finish, kiln::engine::Finish::Length);
}

TEST(EngineCache, CachedEqualsUncachedRaggedBatch8) {
  Fixture f;
  double worst = 0;
  auto prompts = ragged_prompts();
  auto ids = check_cached_greedy(f.model, prompts, 30, &worst);
  std::printf("ragged batch 8, 30 steps: max |cached - uncached| logit = %.3g\n", worst);
  EXPECT_LT(worst, 1e-5);
  SamplingOptions o;
  o.temperature = 0;
  o.max_new_tokens = 30;
  o.stop_tokens = {-1};
  auto r = Generator(f.model.ptr(), f.tok).generate(prompts, {o});
  for (size_t b = 0; b < prompts.size(); ++b) EXPECT_EQ(r[b].ids, ids[b]) << "row " << b;
}

TEST(EngineCache, ChunkedPrefillUsesPrefixAndCausalMask) {
  Fixture f;
  torch::NoGradGuard ng;
  auto seq = random_prompt(20, 3);
  auto ref = f.model->forward(torch::tensor(seq).view({1, -1}))[0];  // (20, V)
  KVCache cache(f.model->cache_shape(), 1, 8);
  // 7 tokens, then a chunk of 9, then 4: every chunk after the first sees the prefix.
  int64_t at = 0;
  for (int64_t len : {7, 9, 4}) {
    std::vector<int64_t> chunk(seq.begin() + at, seq.begin() + at + len);
    auto got = f.model->forward_cached(torch::tensor(chunk).view({1, -1}), {len}, {0}, cache, true)[0];
    EXPECT_LT((got - ref.narrow(0, at, len)).abs().max().item<double>(), 1e-5) << "chunk at " << at;
    at += len;
  }
  EXPECT_EQ(cache.length(0), 20);
}

TEST(EngineCache, RowOutputIndependentOfOtherRows) {
  Fixture f;
  SamplingOptions o;
  o.temperature = 1.0;
  o.top_k = 50;
  o.max_new_tokens = 40;
  o.seed = 1234;
  o.stop_tokens = {-1};
  auto prompt = random_prompt(5, 9);
  auto alone = Generator(f.model.ptr(), f.tok).generate({prompt}, {o})[0].ids;
  std::vector<std::vector<int64_t>> prompts = ragged_prompts();
  std::vector<SamplingOptions> opts(prompts.size(), o);
  for (size_t i = 0; i < opts.size(); ++i) opts[i].seed = 50 + i, opts[i].max_new_tokens = 5 + 7 * int64_t(i);
  prompts.insert(prompts.begin() + 3, prompt);
  opts.insert(opts.begin() + 3, o);
  auto batch = Generator(f.model.ptr(), f.tok).generate(prompts, opts);
  EXPECT_EQ(batch[3].ids, alone);
  EXPECT_NE(batch[2].ids, batch[4].ids);
  // A different seed gives a different sample (the seed is used at all).
  o.seed = 1235;
  EXPECT_NE(Generator(f.model.ptr(), f.tok).generate({prompt}, {o})[0].ids, alone);
}

TEST(EngineCache, FreedSlotIsReusedWhileOthersContinue) {
  Fixture f;
  SamplingOptions o;
  o.temperature = 0;
  o.stop_tokens = {-1};
  o.max_new_tokens = 12;
  auto p0 = random_prompt(4, 20), p1 = random_prompt(9, 21), p2 = random_prompt(3, 22);
  std::vector<int64_t> ref0, ref1, ref2;
  {
    Generator g(f.model.ptr(), f.tok);
    ref0 = g.generate({p0}, {o})[0].ids;
    ref1 = g.generate({p1}, {o})[0].ids;
    ref2 = g.generate({p2}, {o})[0].ids;
  }
  Generator g(f.model.ptr(), f.tok);
  auto s0 = g.add(p0, o), s1 = g.add(p1, o);
  for (int i = 0; i < 3; ++i) g.step();
  g.remove(s0);  // row 0 leaves early; row 2 takes its slot, row 1 carries on
  auto s2 = g.add(p2, o);
  EXPECT_EQ(s2, s0);
  while (g.live_rows() > 0) g.step();
  EXPECT_EQ(g.result(s1).ids, ref1);
  EXPECT_EQ(g.result(s2).ids, ref2);
  EXPECT_EQ(g.result(s1).finish, kiln::engine::Finish::Length);
}

TEST(EngineCache, StopTokensCancelAndErrors) {
  Fixture f;
  SamplingOptions o;
  o.temperature = 0;
  o.max_new_tokens = 30;
  o.stop_tokens = {-1};
  auto prompt = random_prompt(5, 4);
  Generator g(f.model.ptr(), f.tok);
  auto full = g.generate({prompt}, {o})[0].ids;
  o.stop_tokens = {full[10]};  // stops at the first occurrence of that id, which is excluded
  auto stopped = g.generate({prompt}, {o})[0];
  EXPECT_EQ(stopped.finish, kiln::engine::Finish::Stop);
  const auto first = std::find(full.begin(), full.end(), full[10]) - full.begin();
  EXPECT_EQ(stopped.ids, std::vector<int64_t>(full.begin(), full.begin() + first));
  o.stop_tokens = {-1};
  int seen = 0;
  auto cancelled = g.generate({prompt}, {o}, [&](size_t, const kiln::engine::GenToken&) { return ++seen < 4; })[0];
  EXPECT_EQ(cancelled.finish, kiln::engine::Finish::Cancelled);
  EXPECT_EQ(cancelled.ids.size(), 4u);
  EXPECT_THROW(g.generate({{}}, {o}), kiln::Error);
  EXPECT_THROW(g.generate({std::vector<int64_t>(200, 1)}, {o}), kiln::Error);  // past 160 positions
  EXPECT_THROW(g.generate({{99999}}, {o}), kiln::Error);
}

// The tool state machine: a python block forces <|output_start|> result <|output_end|>, masked 0.
// The model is wired by hand to write a script greedily: all blocks zero, so the last hidden
// state is rms_norm(embedding); token chain[i] embeds as unit vector i, and the head row of
// chain[i+1] reads dimension i, so after chain[i] the argmax is chain[i+1].
TEST(EngineCache, ToolUseForcesCalculatorOutput) {
  Fixture f;
  const auto& t = *f.tok;
  const int64_t ps = t.special_id("<|python_start|>"), pe = t.special_id("<|python_end|>");
  const int64_t os = t.special_id("<|output_start|>"), oe = t.special_id("<|output_end|>");
  {
    torch::NoGradGuard ng;
    for (auto& p : f.model->parameters()) p.zero_();
    auto wte = f.model->embedding_params()[0], head = f.model->unembedding_params()[0];
    std::vector<int64_t> chain = {static_cast<int64_t>(t.bos_id()), ps, '1', '2', '*', '3', pe, 'x'};
    for (size_t i = 0; i + 1 < chain.size(); ++i) {
      wte[chain[i]][static_cast<int64_t>(i)] = 1.0;
      head[chain[i + 1]][static_cast<int64_t>(i)] = 1.0;
    }
  }
  SamplingOptions o;
  o.temperature = 0;
  o.max_new_tokens = 8;
  auto r = Generator(f.model.ptr(), f.tok).generate({{static_cast<int64_t>(t.bos_id())}}, {o})[0];
  std::vector<int64_t> want = {ps, '1', '2', '*', '3', pe, os, '3', '6'};
  want.resize(8);
  EXPECT_EQ(r.ids, want);
  EXPECT_EQ(r.mask, (std::vector<uint8_t>{1, 1, 1, 1, 1, 1, 0, 0}));
  o.max_new_tokens = 10;
  r = Generator(f.model.ptr(), f.tok).generate({{static_cast<int64_t>(t.bos_id())}}, {o})[0];
  EXPECT_EQ(r.ids.at(8), '6');
  EXPECT_EQ(r.ids.at(9), oe);
  EXPECT_EQ(r.mask.at(9), 0);
  o.tools = false;  // without tools nothing is forced
  r = Generator(f.model.ptr(), f.tok).generate({{static_cast<int64_t>(t.bos_id())}}, {o})[0];
  EXPECT_EQ(r.mask, std::vector<uint8_t>(r.ids.size(), 1));
}

// Chunked prefill (./serve --prefill-chunk): a long prompt that joins a running batch is fed at
// most `chunk` tokens per step, the row already decoding gets a token at every one of those steps,
// and both rows produce what they produce alone (greedy).
TEST(EngineCache, ChunkedPrefillKeepsDecodingRowsGoing) {
  Fixture f;
  SamplingOptions o;
  o.temperature = 0;
  o.stop_tokens = {-1};
  o.max_new_tokens = 20;
  const auto pa = random_prompt(4, 30), pb = random_prompt(37, 31);
  Generator alone(f.model.ptr(), f.tok);
  const auto ref_a = alone.generate({pa}, {o})[0].ids, ref_b = alone.generate({pb}, {o})[0].ids;
  Generator g(f.model.ptr(), f.tok);
  g.set_prefill_chunk(8);
  const auto a = g.add(pa, o);
  EXPECT_EQ(g.step().size(), 1u);  // a's prefill and first token
  const auto b = g.add(pb, o);
  int steps_until_b = 0;
  for (bool b_started = false; !b_started;) {
    const auto events = g.step();
    ++steps_until_b;
    EXPECT_LE(g.last_step().prefill_tokens, 8) << "a step fed more prompt tokens than the chunk";
    bool a_got = false;
    for (const auto& ev : events) a_got |= ev.slot == a, b_started |= ev.slot == b;
    EXPECT_TRUE(a_got) << "the decoding row waited for the prefill at step " << steps_until_b;
    ASSERT_LT(steps_until_b, 20);
  }
  EXPECT_EQ(steps_until_b, 5);  // ceil(37 / 8) steps of prefill, the last one samples b's first token
  while (g.live_rows() > 0) g.step();
  EXPECT_EQ(g.result(a).ids, ref_a);
  EXPECT_EQ(g.result(b).ids, ref_b);
  // Every prompt token is counted once in last_step().prefill_tokens (/metrics'
  // kiln_prefill_tokens_total), a 1-token chunk too; sampled tokens fed back are not prompt.
  Generator g1(f.model.ptr(), f.tok);
  g1.set_prefill_chunk(1);
  g1.add(random_prompt(5, 32), o);
  int64_t fed = 0;
  while (g1.live_rows() > 0) {
    g1.step();
    fed += g1.last_step().prefill_tokens;
  }
  EXPECT_EQ(fed, 5);
}

// The stored q|k|v matrix of decode (Note [Stored qkv]) follows the weights: after an in-place
// update (an optimizer step) and after set_data (a load that swaps the data), cached decoding
// still equals the uncached model.
TEST(EngineCache, StoredQkvFollowsWeightUpdates) {
  Fixture f;
  auto prompt = random_prompt(6, 5);
  double worst = 0;
  check_cached_greedy(f.model, {prompt}, 3, &worst);
  torch::NoGradGuard ng;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  for (auto& kv : f.model->named_parameters())
    if (kv.key().find("attn.c_k") != std::string::npos) kv.value().add_(torch::randn(kv.value().sizes(), gen));
  check_cached_greedy(f.model, {prompt}, 3, &worst);
  for (auto& kv : f.model->named_parameters())
    if (kv.key().find("attn.c_q") != std::string::npos) kv.value().set_data(kv.value() * 1.5);
  check_cached_greedy(f.model, {prompt}, 3, &worst);
  EXPECT_LT(worst, 1e-5);
}

// sample_next draws from the softmax of logits / temperature, restricted by top-k: frequencies
// over 40000 draws within 5 standard errors of the probabilities, and never a token top-k drops.
TEST(Sampler, DrawsFollowTheSoftmax) {
  const auto logits = torch::tensor({1.0f, 0.0f, 2.0f, -1.0f, 0.5f});
  for (int64_t top_k : {0, 3}) {
    SamplingOptions o;
    o.temperature = 0.8;
    o.top_k = top_k;
    auto z = logits / o.temperature;
    if (top_k > 0) z = z.masked_fill(z < std::get<0>(z.topk(top_k)).min(), -INFINITY);
    const auto p = z.softmax(0);
    torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(42);
    const int n = 40000;
    std::vector<int> count(5, 0);
    for (int i = 0; i < n; ++i) ++count.at(static_cast<size_t>(kiln::engine::sample_next(logits, o, gen)));
    for (int64_t v = 0; v < 5; ++v) {
      const double pv = p[v].item<double>(), se = std::sqrt(pv * (1 - pv) / n) + 1e-12;
      EXPECT_NEAR(count[v] / double(n), pv, 5 * se) << "token " << v << " top_k " << top_k;
      if (pv == 0) EXPECT_EQ(count[v], 0) << "top_k " << top_k << " kept token " << v;
    }
  }
}

// echo (lm-eval's log-likelihoods): the prompt's logprobs come from the row's own prefill, chunk
// by chunk, and equal a log-softmax of the uncached forward at every position; a score-only row
// (max_new_tokens 0) ends after its prompt without sampling, and a row decoding beside it gets its
// token at every step meanwhile.
TEST(EngineCache, EchoLogprobsFromChunkedPrefill) {
  Fixture f;
  torch::NoGradGuard ng;
  const auto prompt = random_prompt(30, 12);
  const auto ref = torch::log_softmax(f.model->forward(torch::tensor(prompt).view({1, -1}))[0], -1);  // (30, V)
  SamplingOptions dec;
  dec.temperature = 0;
  dec.stop_tokens = {-1};
  dec.max_new_tokens = 20;
  SamplingOptions echo = dec;
  echo.echo = true;
  echo.logprobs = 3;
  echo.max_new_tokens = 0;
  Generator g(f.model.ptr(), f.tok);
  g.set_prefill_chunk(7);
  const auto a = g.add(random_prompt(3, 13), dec);
  g.step();
  const auto s = g.add(prompt, echo);
  int steps = 0;
  for (bool done = false; !done;) {
    const auto events = g.step();
    ++steps;
    bool a_got = false;
    for (const auto& ev : events) {
      a_got |= ev.slot == a;
      if (ev.slot == s) {
        done = true;
        EXPECT_TRUE(ev.finished);
        EXPECT_EQ(ev.token.id, -1);
      }
    }
    EXPECT_TRUE(a_got) << "the decoding row waited at step " << steps;
    ASSERT_LT(steps, 20);
  }
  EXPECT_EQ(steps, 5);  // ceil(30 / 7)
  const auto& lp = g.result(s).prompt_logprobs;
  ASSERT_EQ(lp.size(), prompt.size() - 1);
  double worst = 0;
  for (size_t t = 1; t < prompt.size(); ++t) {
    EXPECT_EQ(lp[t - 1].id, prompt[t]);
    worst = std::max(worst, std::abs(double(lp[t - 1].logprob) - ref[int64_t(t) - 1][prompt[t]].item<double>()));
    ASSERT_EQ(lp[t - 1].top.size(), 3u);
    EXPECT_EQ(lp[t - 1].top[0].first, ref[int64_t(t) - 1].argmax().item<int64_t>());
  }
  EXPECT_LT(worst, 1e-5);
  EXPECT_TRUE(g.result(s).ids.empty());
}
