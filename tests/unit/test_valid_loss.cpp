// The loss over valid targets (train/valid_loss.h) and the Trainer with fully masked micro-batches:
// the step's loss equals an independent sum-over-valid / count on the concatenated rows; a
// micro-batch whose targets are all -1 gives a finite loss and zero gradient, and the run goes on.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model/gpt.h"
#include "tok_test_util.h"
#include "train/trainer.h"
#include "train/valid_loss.h"

using namespace kiln;

namespace {

model::GPT tiny_gpt(int64_t vocab) {
  ModelConfig m;
  m.depth = 2, m.width = 32, m.n_head = 2, m.seq_len = 16;
  model::GPT g(model::GPTConfig::from(m, vocab));
  g->init_weights(3);
  // The head is zero-initialised (nanochat): perturb it so that gradients reach every tensor.
  torch::NoGradGuard ng;
  for (auto& p : g->parameters()) p.add_(torch::randn_like(p) * 0.02);
  return g;
}

data::Batch batch(int64_t B, int64_t T, int64_t vocab, double keep, int seed) {
  torch::manual_seed(seed);
  data::Batch b;
  b.inputs = torch::randint(vocab, {B, T}, torch::kInt64);
  b.targets = torch::randint(vocab, {B, T}, torch::kInt64);
  b.targets.masked_fill_(torch::rand({B, T}) >= keep, -1);
  return b;
}

std::vector<torch::Tensor> grads(model::GPT& g) {
  std::vector<torch::Tensor> out;
  for (auto& p : g->parameters()) out.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  return out;
}

}  // namespace

TEST(ValidLoss, AllMaskedMicroBatchIsFiniteWithZeroGradient) {
  auto g = tiny_gpt(50);
  auto b = batch(2, 16, 50, 0.0, 1);
  ASSERT_EQ((b.targets >= 0).sum().item<int64_t>(), 0);
  auto st = train::count_step_targets({b}, 1);
  EXPECT_EQ(st.total, 0);
  auto loss = train::micro_loss(*g, b, st.counts[0]);
  EXPECT_TRUE(std::isfinite(loss.item<double>()));
  EXPECT_EQ(loss.item<double>(), 0.0);
  (loss * st.weight(0)).backward();
  for (auto& t : grads(g)) EXPECT_EQ(t.abs().max().item<double>(), 0.0);
}

TEST(ValidLoss, StepLossIsSumOverValidTargetsOverTheirCount) {
  auto g = tiny_gpt(50);
  // Three micro-batches with different numbers of valid targets, one of them fully masked.
  std::vector<data::Batch> mb = {batch(2, 16, 50, 0.9, 1), batch(2, 16, 50, 0.0, 2), batch(2, 16, 50, 0.2, 3)};
  auto st = train::count_step_targets(mb, 1);
  double reported = 0;
  for (size_t m = 0; m < mb.size(); ++m) {
    auto l = train::micro_loss(*g, mb[m], st.counts[m]);
    reported += l.item<double>() * double(st.counts[m]);
    (l * st.weight(m)).backward();
  }
  reported /= st.total;
  auto got = grads(g);
  // Reference: all rows in one batch, per-token losses summed over valid targets / their count.
  g->zero_grad();
  auto in = torch::cat({mb[0].inputs, mb[1].inputs, mb[2].inputs}), tg = torch::cat({mb[0].targets, mb[1].targets, mb[2].targets});
  auto per = g->forward_loss_per_token(in, tg);
  auto valid = (tg >= 0);
  auto ref = (per * valid).sum() / valid.sum();
  ref.backward();
  EXPECT_NEAR(reported, ref.item<double>(), 1e-5);
  auto want = grads(g);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_LT((got[i] - want[i]).abs().max().item<double>(), 1e-6) << i;
  // The mean of micro-batch means (what a plain per-micro-batch mean would train) differs.
  printf("step loss %.6f (reference %.6f) over %g valid targets of %d\n", reported, ref.item<double>(), st.total,
         (int)tg.numel());
}

// A loader whose first step is fully masked (both micro-batches), then ordinary batches.
class MaskedFirstLoader : public data::Loader {
 public:
  explicit MaskedFirstLoader(int64_t vocab) : vocab_(vocab) {}
  data::Batch next() override {
    auto b = batch(2, 16, vocab_, n_ < 2 ? 0.0 : (n_ % 2 ? 0.0 : 0.5), int(100 + n_));
    ++n_;
    return b;
  }
  data::Cursor cursor() const override { return {n_, 0, 0}; }
  void restore(const data::Cursor& c) override { n_ = c.batches; }

 private:
  int64_t vocab_, n_ = 0;
};

// Runs the Trainer for `steps` steps on MaskedFirstLoader; returns the logged losses and whether
// the final weights equal the initial ones.
struct MaskedRun {
  std::vector<double> losses;
  double moved = 0;  // max |w_final - w_initial|
};
MaskedRun run_masked(int64_t steps) {
  const std::string dir = test::temp_dir();
  test::shakespeare_512()->save(dir + "/tok.json");
  auto tok = std::make_shared<const tok::Tokenizer>(tok::Tokenizer::load(dir + "/tok.json"));
  Config c = load_config_text(R"(
model: {depth: 2, width: 32, n_head: 2, seq_len: 16}
train: {device_batch_size: 2, total_batch_size: 64}
eval: {every: 0, sample_every: 0}
checkpoint: {every: 0, keep_last: 0}
)", "test.yaml", {"run.dir=" + dir + "/run", "train.max_steps=" + std::to_string(steps)});
  train::TrainerParts p;
  p.cfg = c;
  p.total_steps = steps;
  p.tokenizer = tok;
  p.tokenizer_path = dir + "/tok.json";
  p.train_loader = std::make_unique<MaskedFirstLoader>(tok->vocab_size());
  p.model = model::GPT(model::GPTConfig::from(c.model, tok->vocab_size())).ptr();
  p.model->init_weights(1);
  std::vector<torch::Tensor> before;
  for (auto& w : p.model->parameters()) before.push_back(w.detach().clone());
  auto model = p.model;
  train::Trainer t(std::move(p));
  EXPECT_EQ(t.run(), 0);
  MaskedRun out;
  std::ifstream in(dir + "/run/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto r = nlohmann::json::parse(line);
    if (r.contains("loss")) out.losses.push_back(r["loss"].get<double>());
  }
  auto after = model->parameters();
  for (size_t i = 0; i < before.size(); ++i)
    out.moved = std::max(out.moved, (after[i] - before[i]).abs().max().item<double>());
  return out;
}

TEST(ValidLoss, TrainerRunsOnThroughFullyMaskedMicroBatches) {
  if (test::data_dir().empty()) GTEST_SKIP() << "needs ../shared/data";
  // A fully masked first step updates nothing: zero gradient and zero first moments, so Muon's
  // and AdamW's updates are exactly 0 (with a NaN loss the weights would be NaN).
  MaskedRun one = run_masked(1);
  ASSERT_EQ(one.losses.size(), 1u);
  EXPECT_EQ(one.losses[0], 0.0);
  EXPECT_EQ(one.moved, 0.0);
  // The run goes on: steps 2..4 (one masked and one half-valid micro-batch each) train.
  MaskedRun four = run_masked(4);
  ASSERT_EQ(four.losses.size(), 4u);
  EXPECT_EQ(four.losses[0], 0.0);
  for (size_t i = 1; i < 4; ++i) EXPECT_TRUE(std::isfinite(four.losses[i]) && four.losses[i] > 1.0) << i;
  EXPECT_GT(four.moved, 0.0);
}
