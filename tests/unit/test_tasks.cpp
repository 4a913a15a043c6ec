// Task readers (src/data/tasks.h) on the real files in shared/data: record counts of the official
// splits, nanochat's render_mc text, the GSM8K answer regex and HumanEval's program extraction,
// each against a hand-written expectation; malformed records name file and line.
#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "data/tasks.h"
#include "test_util.h"

using namespace kiln;

TEST(Tasks, RenderMcIsNanochatsPrompt) {
  EXPECT_EQ(data::render_mc("Q?", {"A", "B"}, {"x", "y z"}),
            "Multiple Choice question: Q?\n- x=A\n- y z=B\n\nRespond only with the letter of the correct answer.");
}

TEST(Tasks, Gsm8kAnswerRule) {
  EXPECT_EQ(data::gsm8k_extract_answer("so\n#### 1,000").value(), "1000");
  EXPECT_EQ(data::gsm8k_extract_answer("#### -3.5 apples").value(), "-3.5");
  EXPECT_EQ(data::gsm8k_extract_answer("#### x\n#### 7").value(), "7");  // the first *match*
  EXPECT_FALSE(data::gsm8k_extract_answer("#### ").has_value());
  EXPECT_FALSE(data::gsm8k_extract_answer("answer: 5").has_value());
  EXPECT_FALSE(data::gsm8k_extract_answer("####5").has_value());
}

TEST(Tasks, HumanEvalProgramRules) {
  EXPECT_EQ(data::humaneval_extract_program("Here:\n```python\ndef f():\n    return 1\n```\nbye"),
            "def f():\n    return 1");
  EXPECT_EQ(data::humaneval_extract_program("```\nx = 1\n```"), "x = 1");
  EXPECT_EQ(data::humaneval_extract_program("  def g(): pass  "), "def g(): pass");
  EXPECT_EQ(data::humaneval_imports("import math\nfrom typing import List\n\n\ndef f():\n    import os\n"),
            "import math\nfrom typing import List");
}

TEST(Tasks, CsvQuotingAndNewlines) {
  auto rows = data::parse_csv("a,\"b,c\",\"d\"\"e\"\n\"multi\nline\",2,3\n", "t.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"a", "b,c", "d\"e"}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"multi\nline", "2", "3"}));
  EXPECT_THROW(data::parse_csv("\"open", "t.csv"), Error);
}

TEST(Tasks, RealFilesHaveTheOfficialCounts) {
  const std::string d = test::data_dir();
  if (d.empty()) GTEST_SKIP() << "needs ../shared/data";
  auto arc = data::read_arc(d + "/arc/ARC-Easy-test.jsonl");
  EXPECT_EQ(arc.size(), 2376u);
  EXPECT_EQ(data::read_arc(d + "/arc/ARC-Challenge-test.jsonl").size(), 1172u);
  for (const auto& ex : arc) {
    ASSERT_EQ(ex.conv.messages.size(), 2u);
    ASSERT_NE(std::find(ex.letters.begin(), ex.letters.end(), ex.answer), ex.letters.end()) << ex.id;
    ASSERT_EQ(std::get<std::string>(ex.conv.messages[1].content), ex.answer);
  }
  auto mmlu = data::read_mmlu(d + "/mmlu/test");
  EXPECT_EQ(mmlu.size(), 14042u);
  auto gsm = data::read_gsm8k(d + "/gsm8k/test.jsonl");
  EXPECT_EQ(gsm.size(), 1319u);
  EXPECT_EQ(gsm[0].answer, "18");  // Janet's ducks
  auto he = data::read_humaneval(d + "/humaneval/HumanEval.jsonl");
  ASSERT_EQ(he.size(), 164u);
  EXPECT_EQ(he[0].id, "HumanEval/0");
  EXPECT_EQ(he[0].entry_point, "has_close_elements");
}

TEST(Tasks, MalformedRecordNamesFileAndLine) {
  const std::string p = test::temp_dir() + "/bad.jsonl";
  std::ofstream(p) << "{\"question\":\"q\",\"answer\":\"#### 1\"}\n{\"question\":\"q\"}\n";
  try {
    data::read_gsm8k(p);
    FAIL() << "accepted a record without an answer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p + ":2"), std::string::npos) << e.what();
  }
}
