// CORE's pieces without a model: Python's random (values printed by CPython 3.11's `random`, the
// commands in each comment), the bundle checks (each bad input a kiln::Error naming file, line
// and key), nanochat's prompt templates written out by hand, the token spans and the crop, the
// centring in percent and the argmin's NaN rule. The model side is tests/e2e/core.sh.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "eval/core_bundle.h"
#include "eval/core_eval.h"
#include "eval/core_prompt.h"
#include "eval/py_random.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "core/remove_tree.h"

using namespace kiln;
using namespace kiln::eval;

TEST(CorePyRandom, ShuffleSampleAndRandbelowEqualCPython) {
  // x = list(range(20)); random.Random(1337).shuffle(x)
  std::vector<int64_t> x(20);
  for (int i = 0; i < 20; ++i) x[i] = i;
  PyRandom(1337).shuffle(x);
  EXPECT_EQ(x, (std::vector<int64_t>{13, 1, 2, 9, 7, 8, 0, 18, 3, 14, 4, 16, 12, 15, 6, 10, 5, 11, 17, 19}));
  // random.Random(1234 + 5).sample([i for i in range(30) if i != 5], 10): the pool branch
  EXPECT_EQ(core_fewshot(5, 30, 10), (std::vector<int64_t>{2, 9, 15, 0, 1, 3, 16, 23, 21, 6}));
  // random.Random(1234).sample(list(range(200)), 10): the set branch (n > 21 + 4**3)
  std::vector<int64_t> pop(200);
  for (int i = 0; i < 200; ++i) pop[i] = i;
  EXPECT_EQ(PyRandom(1234).sample(pop, 10), (std::vector<int64_t>{199, 112, 29, 1, 23, 149, 8, 171, 177, 21}));
  // random.Random(2**40 + 3).sample(list(range(1000)), 3): a two-word seed
  pop.resize(1000);
  for (int i = 0; i < 1000; ++i) pop[i] = i;
  EXPECT_EQ(PyRandom((1ULL << 40) + 3).sample(pop, 3), (std::vector<int64_t>{225, 62, 562}));
  PyRandom r0(0);  // [r.getrandbits(32) for _ in range(3)]
  EXPECT_EQ(r0.getrandbits(32), 3626764237u);
  EXPECT_EQ(r0.getrandbits(32), 1654615998u);
  EXPECT_EQ(r0.getrandbits(32), 3255389356u);
  PyRandom r42(42);  // [r._randbelow(n) for n in (1, 2, 3, 7, 100, 2**33 + 5)]
  std::vector<uint64_t> got;
  for (uint64_t n : {1ULL, 2ULL, 3ULL, 7ULL, 100ULL, (1ULL << 33) + 5}) got.push_back(r42.randbelow(n));
  EXPECT_EQ(got, (std::vector<uint64_t>{0, 0, 2, 2, 31, 958682846}));
}

TEST(CorePrompt, FewShotNeverHoldsTheItemItself) {
  for (int64_t n : {2, 3, 6, 50, 400})
    for (int64_t idx = 0; idx < n; idx += 1 + n / 7) {
      const auto f = core_fewshot(idx, n, std::min<int64_t>(10, n - 1));
      EXPECT_EQ(static_cast<int64_t>(f.size()), std::min<int64_t>(10, n - 1));
      for (int64_t i : f) EXPECT_NE(i, idx) << "n " << n;
      EXPECT_EQ(std::set<int64_t>(f.begin(), f.end()).size(), f.size());
    }
  EXPECT_TRUE(core_fewshot(3, 10, 0).empty());
}

TEST(CorePrompt, PyStripIsPythonsUnicodeWhitespace) {
  // ' \u3000\xa0a b\u2028\x1c'.strip() == 'a b'; '\u200b x \u200b'.strip() keeps the zero-width spaces
  EXPECT_EQ(py_strip(" \xE3\x80\x80\xC2\xA0" "a b\xE2\x80\xA8\x1C"), "a b");
  EXPECT_EQ(py_strip("\xE2\x80\x8B x \xE2\x80\x8B"), "\xE2\x80\x8B x \xE2\x80\x8B");
  EXPECT_EQ(py_strip(" \t\n"), "");
}

namespace {
CoreTask task_of(CoreTaskType t, int64_t k, std::string delim) {
  CoreTask task;
  task.label = "t";
  task.path = "t.jsonl";
  task.type = t;
  task.num_fewshot = k;
  task.delimiter = std::move(delim);
  return task;
}
std::vector<const CoreItem*> ptrs(const std::vector<CoreItem>& v) {
  std::vector<const CoreItem*> p;
  for (const auto& x : v) p.push_back(&x);
  return p;
}
}  // namespace

TEST(CorePrompt, TemplatesAreNanochats) {
  // Each few-shot example, then a blank line; the item last (core_eval.py's Jinja templates).
  std::vector<CoreItem> mc(2);
  mc[0].query = "Q0?", mc[0].choices = {"a", "b"}, mc[0].gold = 1;
  mc[1].query = "Q1?", mc[1].choices = {"x", "y", "z"}, mc[1].gold = 0;
  auto t = task_of(CoreTaskType::MultipleChoice, 1, " ");
  EXPECT_EQ(render_core_prompts(t, ptrs(mc), 1, {0}), (std::vector<std::string>{"Q0? b\n\nQ1? x", "Q0? b\n\nQ1? y", "Q0? b\n\nQ1? z"}));
  std::vector<CoreItem> sc(2);
  sc[0].context_options = {"A1", "A2"}, sc[0].continuation = "c0", sc[0].gold = 1;
  sc[1].context_options = {"B1", "B2"}, sc[1].continuation = "c1";
  t = task_of(CoreTaskType::Schema, 1, "|");
  EXPECT_EQ(render_core_prompts(t, ptrs(sc), 1, {0}), (std::vector<std::string>{"A2|c0\n\nB1|c1", "A2|c0\n\nB2|c1"}));
  std::vector<CoreItem> lm(2);
  lm[0].context = "  ctx0 \n", lm[0].continuation = "w0";
  lm[1].context = "\tctx1  ", lm[1].continuation = "w1";
  t = task_of(CoreTaskType::LanguageModeling, 1, "\nA: ");
  // The contexts are trimmed; the prompt without the continuation is stripped as a whole.
  EXPECT_EQ(render_core_prompts(t, ptrs(lm), 1, {0}), (std::vector<std::string>{"ctx0\nA: w0\n\nctx1\nA:", "ctx0\nA: w0\n\nctx1\nA: w1"}));
  EXPECT_EQ(render_core_prompts(t, ptrs(lm), 0, {}), (std::vector<std::string>{"ctx0\nA:", "ctx0\nA: w0"}));
}

TEST(CorePrompt, SpansAndCropOnByteTokens) {
  const auto tok = tok::Tokenizer::from_merges({});  // bytes only: token i is byte i, <|bos|> = 256
  std::vector<CoreItem> mc(1);
  mc[0].query = "Q:", mc[0].choices = {"ab", "abc", "x"};
  auto t = task_of(CoreTaskType::MultipleChoice, 0, " ");
  CorePrompt p = prepare_core_prompt(t, ptrs(mc), 0, 0, tok, 100);
  // Rows "<bos>Q: ab" ... : the common token prefix "<bos>Q: " has 4 tokens.
  EXPECT_EQ(p.rows[0], (std::vector<int64_t>{256, 'Q', ':', ' ', 'a', 'b'}));
  EXPECT_EQ(p.start, (std::vector<int64_t>{4, 4, 4}));
  EXPECT_EQ(p.end, (std::vector<int64_t>{6, 7, 5}));
  // Crop to 5 tokens: the first row loses 1 token, the second 2; spans shift with them.
  p = prepare_core_prompt(t, ptrs(mc), 0, 0, tok, 5);
  EXPECT_EQ(p.rows[1], (std::vector<int64_t>{':', ' ', 'a', 'b', 'c'}));
  EXPECT_EQ(p.start, (std::vector<int64_t>{3, 2, 4}));
  EXPECT_EQ(p.end, (std::vector<int64_t>{5, 5, 5}));
  EXPECT_EQ(p.cropped, 2);
  // A continuation longer than the context: the span starts at 1 (position 0 predicts nothing).
  p = prepare_core_prompt(t, ptrs(mc), 0, 0, tok, 2);
  EXPECT_EQ(p.start[1], 1);
  std::vector<CoreItem> sc(1);
  sc[0].context_options = {"one", "three"}, sc[0].continuation = "end";
  t = task_of(CoreTaskType::Schema, 0, " ");
  p = prepare_core_prompt(t, ptrs(sc), 0, 0, tok, 100);
  // Common suffix "e end" (the options both end in 'e'): 5 tokens.
  EXPECT_EQ(p.end, (std::vector<int64_t>{8, 10}));
  EXPECT_EQ(p.start, (std::vector<int64_t>{3, 5}));
  std::vector<CoreItem> lm(1);
  lm[0].context = "abc ", lm[0].continuation = "de";
  t = task_of(CoreTaskType::LanguageModeling, 0, " ");
  p = prepare_core_prompt(t, ptrs(lm), 0, 0, tok, 100);
  ASSERT_EQ(p.rows.size(), 1u);
  EXPECT_EQ(p.rows[0].size(), 7u);  // <bos>abc de
  EXPECT_EQ(p.start[0], 4);         // <bos>abc: the stripped prompt without the continuation
  EXPECT_EQ(p.end[0], 7);
  // An empty continuation leaves no span: a kiln::Error naming file and line, not an assert.
  lm[0].continuation = "", lm[0].line = 7;
  t.delimiter = "";
  EXPECT_NE(test::error_of([&] { prepare_core_prompt(t, ptrs(lm), 0, 0, tok, 100); }).find("t.jsonl:7"), std::string::npos);
}

TEST(CoreScore, CentringIsInPercentAndArgminKeepsPythonsNaNRule) {
  EXPECT_DOUBLE_EQ(core_centered(0.25, 25.0), 0.0);
  EXPECT_DOUBLE_EQ(core_centered(1.0, 25.0), 1.0);
  EXPECT_DOUBLE_EQ(core_centered(0.625, 25.0), 0.5);
  EXPECT_DOUBLE_EQ(core_centered(0.3, 0.0), 0.3);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(core_argmin({2.0, 1.0, 1.0, 3.0}), 1);  // the first of equal minima
  EXPECT_EQ(core_argmin({nan, 1.0, 0.5}), 0);       // min([nan, ...]) is nan: index 0
  EXPECT_EQ(core_argmin({2.0, nan, 0.5}), 2);
}

namespace {
namespace fs = std::filesystem;
struct Bundle {
  fs::path dir;
  explicit Bundle(const std::string& name) : dir(fs::path(testing::TempDir()) / ("core_" + name)) {
    kiln::remove_tree(dir);
    fs::create_directories(dir / "eval_data");
    put("core.yaml",
        "icl_tasks:\n- label: mc\n  dataset_uri: mc.jsonl\n  num_fewshot: [1]\n  icl_task_type: multiple_choice\n"
        "- label: lm\n  dataset_uri: lm.jsonl\n  num_fewshot: [0]\n  icl_task_type: language_modeling\n"
        "  continuation_delimiter: \"\\nA: \"\n");
    put("eval_meta_data.csv", "Eval Task,Random baseline,Description\nmc,25.0,\"a, b\"\nlm,0,x\n");
    put("eval_data/mc.jsonl", "{\"query\": \"q1\", \"choices\": [\"a\", \"b\"], \"gold\": 1}\n"
                              "{\"query\": \"q2\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n\n");
    put("eval_data/lm.jsonl", "{\"context\": \"c\", \"continuation\": 5}\n");
  }
  void put(const std::string& rel, const std::string& text) const { std::ofstream(dir / rel) << text; }
  std::string error() const { return test::error_of([&] { load_core_bundle(dir.string()); }); }
};
}  // namespace

TEST(CoreBundle, ReadsTheDclmFormat) {
  Bundle b("good");
  const CoreBundle cb = load_core_bundle(b.dir.string());
  ASSERT_EQ(cb.tasks.size(), 2u);
  EXPECT_EQ(cb.tasks[0].delimiter, " ");  // nanochat's default
  EXPECT_EQ(cb.tasks[0].num_fewshot, 1);
  EXPECT_EQ(cb.tasks[0].random_baseline, 25.0);
  EXPECT_EQ(cb.tasks[0].items.size(), 2u);  // the blank last line is skipped
  EXPECT_EQ(cb.tasks[0].items[1].line, 2);
  EXPECT_EQ(cb.tasks[1].delimiter, "\nA: ");
  EXPECT_EQ(cb.tasks[1].items[0].continuation, "5");  // Jinja renders an integer as its digits
}

TEST(CoreBundle, EveryBadInputIsAnErrorNamingWhere) {
  auto expect = [](const Bundle& b, std::initializer_list<const char*> needles) {
    const std::string e = b.error();
    ASSERT_FALSE(e.empty()) << "no error";
    for (const char* n : needles) EXPECT_NE(e.find(n), std::string::npos) << "'" << n << "' not in: " << e;
  };
  {
    Bundle b("nodir");
    kiln::remove_tree(b.dir);
    expect(b, {"not a directory", "fetch.sh core"});
  }
  {
    Bundle b("noyaml");
    fs::remove(b.dir / "core.yaml");
    expect(b, {"core.yaml does not exist"});
  }
  {
    Bundle b("missing_file");
    fs::remove(b.dir / "eval_data/lm.jsonl");
    expect(b, {"core.yaml:6", "task lm", "lm.jsonl does not exist"});
  }
  {
    Bundle b("bad_json");
    b.put("eval_data/mc.jsonl", "{\"query\": \"q1\", \"choices\": [\"a\"], \"gold\": 0}\n{\"query\": \"q2\", \"choi\n");
    expect(b, {"mc.jsonl:2", "not a valid JSON record"});
  }
  {
    Bundle b("missing_key");
    b.put("eval_data/mc.jsonl", "{\"query\": \"q1\", \"gold\": 0}\n");
    expect(b, {"mc.jsonl:1", "key 'choices' is missing"});
  }
  {
    Bundle b("unknown_type");
    b.put("core.yaml", "icl_tasks:\n- label: mc\n  dataset_uri: mc.jsonl\n  num_fewshot: [0]\n  icl_task_type: generation\n");
    expect(b, {"core.yaml:2", "icl_task_type 'generation'", "multiple_choice, schema or language_modeling"});
  }
  {
    Bundle b("gold");
    b.put("eval_data/mc.jsonl", "{\"query\": \"q1\", \"choices\": [\"a\", \"b\"], \"gold\": 1}\n"
                                "{\"query\": \"q2\", \"choices\": [\"a\", \"b\"], \"gold\": 2}\n");
    expect(b, {"mc.jsonl:2", "'gold' = 2 is out of range for 2 choices"});
  }
  {
    Bundle b("few_items");
    b.put("core.yaml", "icl_tasks:\n- label: mc\n  dataset_uri: mc.jsonl\n  num_fewshot: [2]\n  icl_task_type: multiple_choice\n");
    expect(b, {"mc.jsonl holds 2 items", "num_fewshot 2", "at least 3"});
  }
  {
    Bundle b("no_baseline");
    b.put("eval_meta_data.csv", "Eval Task,Random baseline\nmc,25\n");
    expect(b, {"eval_meta_data.csv has no row for task 'lm'"});
  }
  {
    Bundle b("bad_baseline");
    b.put("eval_meta_data.csv", "Eval Task,Random baseline\nmc,25\nlm,1e3\n");
    expect(b, {"record 3", "'1e3'", "[0, 100)"});
  }
  {
    Bundle b("bad_yaml");
    b.put("core.yaml", "icl_tasks:\n- label: [mc\n");
    expect(b, {"core.yaml:", "not valid YAML"});
  }
  {
    Bundle b("no_fewshot");
    b.put("core.yaml", "icl_tasks:\n- label: mc\n  dataset_uri: mc.jsonl\n  num_fewshot: many\n  icl_task_type: multiple_choice\n");
    expect(b, {"num_fewshot", "list of integers"});
  }
}
