// ./eval's scoring pieces against hand-made expectations: fed the gold answers every scorer gives
// 100 % on the full task files (GSM8K, ARC, MMLU), fed wrong ones 0 %; the multiple-choice argmax
// reads the row's last prompt position and only the answer letters (synthetic logits with traps
// elsewhere); ChatCORE's formula; the PNG writer's bytes (re-inflated with zlib).
#include <gtest/gtest.h>
#include <zlib.h>

#include "eval/categorical.h"
#include "eval/plot.h"
#include "eval/results.h"
#include "eval/tasks.h"
#include "test_util.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

using namespace kiln;

namespace {

std::vector<data::TaskExample> load(const std::string& task) {
  const std::string d = test::data_dir();
  if (d.empty()) return {};
  const auto& t = eval::task_spec(task);
  return data::read_task(t.kind, eval::task_data_path(t, d));
}

}  // namespace

TEST(Eval, OracleAnswersScoreAllOrNothingOnTheFullTaskFiles) {
  if (test::data_dir().empty()) GTEST_SKIP() << "no shared data (KILN_DATA)";
  for (const std::string task : {"arc-easy", "arc-challenge", "mmlu", "gsm8k"}) {
    const auto& t = eval::task_spec(task);
    auto exs = load(task);
    ASSERT_GT(exs.size(), 1000u) << task;
    size_t gold = 0, wrong = 0;
    for (const auto& ex : exs) {
      const std::string g = eval::oracle_answer(t, ex, eval::Oracle::Gold), w = eval::oracle_answer(t, ex, eval::Oracle::Wrong);
      gold += t.categorical ? eval::score_mc(g, ex) : eval::score_gsm8k(g, ex);
      wrong += t.categorical ? eval::score_mc(w, ex) : eval::score_gsm8k(w, ex);
    }
    EXPECT_EQ(gold, exs.size()) << task;
    EXPECT_EQ(wrong, 0u) << task;
  }
  // The GSM8K gold completion carries the calculator calls the engine would force.
  auto g = load("gsm8k");
  EXPECT_NE(eval::oracle_answer(eval::task_spec("gsm8k"), g[0], eval::Oracle::Gold).find("<|python_start|>"),
            std::string::npos);
}

TEST(Eval, McArgmaxReadsTheLastPromptPositionAndOnlyTheLetters) {
  auto tok = tok::Tokenizer::from_merges({});  // bytes + specials: every letter is one token
  std::vector<data::TaskExample> exs(5);
  const std::vector<std::vector<std::string>> letters = {{"A", "B", "C", "D"}, {"1", "2", "3"}, {"A", "B", "C", "D", "E"},
                                                         {"A", "B", "C", "D"}, {"A", "B"}};
  for (size_t i = 0; i < exs.size(); ++i) {
    exs[i].letters = letters[i];
    exs[i].answer = letters[i][(i * 7 + 1) % letters[i].size()];
    exs[i].conv.messages = {{"user", std::string(3 + 11 * i, 'q')}, {"assistant", exs[i].answer}};
  }
  std::vector<const data::TaskExample*> ptrs;
  for (auto& e : exs) ptrs.push_back(&e);
  eval::McBatch b = eval::make_mc_batch(tok, ptrs, 0);
  ASSERT_EQ(b.ids.size(0), 5);
  // b.last against the rendered prompt, read independently of make_mc_batch: the row holds the
  // prompt render_for_completion makes, and b.last is its final token, <|assistant_start|>.
  const int64_t assistant_start = tok.special_id("<|assistant_start|>");
  for (int64_t i = 0; i < 5; ++i) {
    const auto prompt = tok::render_for_completion(tok, exs[i].conv);
    ASSERT_EQ(b.last[i], int64_t(prompt.size()) - 1) << "row " << i;
    EXPECT_EQ(b.ids[i][b.last[i]].item<int64_t>(), assistant_start) << "row " << i;
    for (size_t j = 0; j < prompt.size(); ++j) ASSERT_EQ(b.ids[i][j].item<int64_t>(), int64_t(prompt[j])) << i << "," << j;
  }
  for (bool want_gold : {true, false}) {
    torch::manual_seed(0);
    auto logits = torch::randn({5, b.ids.size(1), static_cast<int64_t>(tok.vocab_size())});
    for (int64_t i = 0; i < 5; ++i) {
      const auto& ex = exs[i];
      const size_t gold = std::find(ex.letters.begin(), ex.letters.end(), ex.answer) - ex.letters.begin();
      const size_t other = (gold + 1) % ex.letters.size();
      logits[i][b.last[i]][b.letters[i][want_gold ? gold : other]] = 5.0;
      logits[i][b.last[i]][tok.encode("z")[0]] = 50.0;  // a non-letter token: must be ignored
      if (b.last[i] + 1 < b.ids.size(1))                  // padding after the prompt: must be ignored
        logits[i][b.last[i] + 1][b.letters[i][want_gold ? other : gold]] = 50.0;
      if (b.last[i] > 0) logits[i][b.last[i] - 1][b.letters[i][want_gold ? other : gold]] = 50.0;
    }
    auto pred = eval::argmax_letters(logits, b);
    int correct = 0;
    for (int64_t i = 0; i < 5; ++i) correct += eval::score_mc(exs[i].letters[pred[i]], exs[i]);
    EXPECT_EQ(correct, want_gold ? 5 : 0);
  }
  // Cropping keeps the end of a long prompt (the letters and <|assistant_start|>).
  eval::McBatch c = eval::make_mc_batch(tok, ptrs, 16);
  EXPECT_EQ(c.ids.size(1), 16);
  EXPECT_EQ(c.ids[4][15].item<int64_t>(), tok.special_id("<|assistant_start|>"));
  EXPECT_GT(c.cropped, 0);
}

TEST(Eval, ChatCoreIsTheMeanCenteredAccuracyOfAllFiveTasks) {
  std::vector<eval::TaskResult> rs;
  const std::vector<double> acc = {0.40, 0.30, 0.25, 0.05, 0.10};
  for (size_t i = 0; i < 5; ++i) {
    eval::TaskResult r;
    r.task = eval::chat_tasks()[i].name;
    r.score = acc[i];
    rs.push_back(r);
  }
  auto c = eval::chatcore(rs);
  ASSERT_TRUE(c.has_value());
  const double want = ((0.40 - 0.25) / 0.75 + (0.30 - 0.25) / 0.75 + 0.0 + 0.05 + 0.10) / 5;
  EXPECT_NEAR(c->score, want, 1e-12);
  rs.pop_back();
  EXPECT_FALSE(eval::chatcore(rs).has_value()) << "ChatCORE only when all five tasks ran";
}

TEST(Eval, PngBytesInflateToTheImage) {
  std::vector<uint8_t> rgb = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30};
  const std::string png = eval::encode_png(2, 2, rgb);
  ASSERT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(png.substr(png.size() - 8), std::string("IEND\xae\x42\x60\x82", 8));  // the well-known IEND CRC
  const size_t idat = png.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  const uint32_t len = (uint8_t(png[idat - 4]) << 24) | (uint8_t(png[idat - 3]) << 16) | (uint8_t(png[idat - 2]) << 8) |
                       uint8_t(png[idat - 1]);
  std::vector<uint8_t> raw(2 * 7);
  uLongf n = raw.size();
  ASSERT_EQ(uncompress(raw.data(), &n, reinterpret_cast<const Bytef*>(png.data() + idat + 4), len), Z_OK);
  ASSERT_EQ(n, 14u);
  const std::vector<uint8_t> want = {0, 255, 0, 0, 0, 255, 0, 0, 0, 0, 255, 10, 20, 30};
  EXPECT_EQ(raw, want);
}
