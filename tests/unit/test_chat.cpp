// The chat template against nanochat §4's rules, one hand-written conversation per rule, then 50
// real GSM8K train records checked against an independent std::regex rewrite of their answers.
// Needs ../shared/data for the GSM8K and trained-tokenizer parts (else those skip).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "tok_test_util.h"
#include "tokenizer/chat.h"

using namespace kiln;
using tok::Conversation;
using tok::Part;
using tok::PartType;

namespace {
struct Expect {  // builds the expected (ids, mask) span by span
  const tok::Tokenizer& t;
  tok::Rendered r;
  Expect& text(const std::string& s, uint8_t m) {
    auto ids = t.encode(s);
    r.ids.insert(r.ids.end(), ids.begin(), ids.end());
    r.mask.insert(r.mask.end(), ids.size(), m);
    return *this;
  }
  Expect& sp(const char* name, uint8_t m) {
    r.ids.push_back(t.special_id(name));
    r.mask.push_back(m);
    return *this;
  }
};

const tok::Tokenizer& tokenizer() {
  static auto bytes = tok::Tokenizer::from_merges({});
  const auto* trained = test::shakespeare_512();
  return trained ? *trained : bytes;
}

void expect_same(const tok::Rendered& got, const tok::Rendered& want) {
  EXPECT_EQ(got.ids, want.ids);
  EXPECT_EQ(got.mask, want.mask);
}
}  // namespace

TEST(ChatRender, UserTurnUntrainedAssistantAndEndTrained) {
  const auto& t = tokenizer();
  Conversation c{{{"user", "Hi there"}, {"assistant", "Hello!"}}};
  Expect e{t, {}};
  e.sp("<|bos|>", 0).sp("<|user_start|>", 0).text("Hi there", 0).sp("<|user_end|>", 0);
  e.sp("<|assistant_start|>", 0).text("Hello!", 1).sp("<|assistant_end|>", 1);
  expect_same(tok::render_conversation(t, c), e.r);
}

TEST(ChatRender, SystemIsMergedIntoFirstUser) {
  const auto& t = tokenizer();
  Conversation c{{{"system", "Be brief."}, {"user", "Why?"}, {"assistant", "Because."}}};
  Conversation merged{{{"user", "Be brief.\n\nWhy?"}, {"assistant", "Because."}}};
  expect_same(tok::render_conversation(t, c), tok::render_conversation(t, merged));
}

TEST(ChatRender, PartsPythonTrainedOutputNot) {
  const auto& t = tokenizer();
  std::vector<Part> parts = {{PartType::Text, "It is "},
                             {PartType::Python, "12*4"},
                             {PartType::PythonOutput, "48"},
                             {PartType::Text, " apples."}};
  Conversation c{{{"user", "How many?"}, {"assistant", parts}}};
  Expect e{t, {}};
  e.sp("<|bos|>", 0).sp("<|user_start|>", 0).text("How many?", 0).sp("<|user_end|>", 0).sp("<|assistant_start|>", 0);
  e.text("It is ", 1).sp("<|python_start|>", 1).text("12*4", 1).sp("<|python_end|>", 1);
  e.sp("<|output_start|>", 0).text("48", 0).sp("<|output_end|>", 0).text(" apples.", 1).sp("<|assistant_end|>", 1);
  expect_same(tok::render_conversation(t, c), e.r);
}

TEST(ChatRender, MultiTurnEveryUserTurnUntrained) {
  const auto& t = tokenizer();
  Conversation c{{{"user", "a"}, {"assistant", "b"}, {"user", "c"}, {"assistant", "d"}, {"user", "e"}}};
  Expect e{t, {}};
  e.sp("<|bos|>", 0);
  e.sp("<|user_start|>", 0).text("a", 0).sp("<|user_end|>", 0).sp("<|assistant_start|>", 0).text("b", 1).sp("<|assistant_end|>", 1);
  e.sp("<|user_start|>", 0).text("c", 0).sp("<|user_end|>", 0).sp("<|assistant_start|>", 0).text("d", 1).sp("<|assistant_end|>", 1);
  e.sp("<|user_start|>", 0).text("e", 0).sp("<|user_end|>", 0);
  expect_same(tok::render_conversation(t, c), e.r);
}

TEST(ChatRender, AlternationViolationsAreErrors) {
  const auto& t = tokenizer();
  auto throws_naming = [&](const Conversation& c, const std::string& needle) {
    try {
      tok::render_conversation(t, c);
      ADD_FAILURE() << "expected kiln::Error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  throws_naming({{{"user", "a"}, {"user", "b"}}}, "message 1 has role 'user'");
  throws_naming({{{"assistant", "a"}}}, "message 0 has role 'assistant'");
  throws_naming({{{"system", "s"}, {"assistant", "a"}}}, "system message must be followed by a user");
  throws_naming({{{"user", std::vector<Part>{{PartType::Text, "x"}}}}}, "has content parts");
  throws_naming({{}}, "no messages");
}

TEST(ChatRender, TruncationKeepsThePrefix) {
  const auto& t = tokenizer();
  Conversation c{{{"user", "Tell me a long story please"}, {"assistant", "Once upon a time there was a tokenizer."}}};
  auto full = tok::render_conversation(t, c, 0);
  auto cut = tok::render_conversation(t, c, 7);
  ASSERT_GT(full.ids.size(), 7u);
  ASSERT_EQ(cut.ids.size(), 7u);
  ASSERT_EQ(cut.mask.size(), 7u);
  EXPECT_TRUE(std::equal(cut.ids.begin(), cut.ids.end(), full.ids.begin()));
  EXPECT_TRUE(std::equal(cut.mask.begin(), cut.mask.end(), full.mask.begin()));
}

TEST(ChatRender, ForCompletionDropsLastAnswerAndOpensAssistant) {
  const auto& t = tokenizer();
  Conversation c{{{"user", "2+2?"}, {"assistant", "4"}, {"user", "3+3?"}, {"assistant", "6"}}};
  Conversation prefix{{{"user", "2+2?"}, {"assistant", "4"}, {"user", "3+3?"}}};
  auto want = tok::render_conversation(t, prefix, 0).ids;
  want.push_back(t.special_id("<|assistant_start|>"));
  EXPECT_EQ(tok::render_for_completion(t, c), want);
  EXPECT_EQ(tok::render_for_completion(t, prefix), want);  // already ends with the user
}

TEST(ChatJson, MessagesWithPartsAndErrors) {
  const auto& t = tokenizer();
  auto rec = nlohmann::json::parse(R"({"messages": [{"role": "user", "content": "q"},
      {"role": "assistant", "content": [{"type": "text", "text": "a "}, {"type": "python", "text": "1+1"},
                                        {"type": "python_output", "text": "2"}]}]})");
  auto c = tok::conversation_from_json(rec, "x.jsonl:3");
  ASSERT_EQ(c.messages.size(), 2u);
  const auto& parts = std::get<std::vector<Part>>(c.messages[1].content);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[1].type, PartType::Python);
  EXPECT_EQ(parts[2].text, "2");
  EXPECT_EQ(t.decode(tok::render_conversation(t, c).ids),
            "<|bos|><|user_start|>q<|user_end|><|assistant_start|>a <|python_start|>1+1<|python_end|>"
            "<|output_start|>2<|output_end|><|assistant_end|>");
  for (const char* bad : {R"({"messages": [{"role": "user"}]})", R"({"text": "no conversation"})",
                          R"({"messages": [{"role": "assistant", "content": [{"type": "image", "text": ""}]}]})"}) {
    try {
      tok::conversation_from_json(nlohmann::json::parse(bad), "x.jsonl:3");
      ADD_FAILURE() << "expected an error for " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("x.jsonl:3"), std::string::npos) << e.what();
    }
  }
}

TEST(ChatJson, Gsm8kAnnotationsBecomeToolParts) {
  auto parts = tok::gsm8k_answer_parts("She has <<2*3=6>>6 eggs <<6-1=5>>5.\n#### 5");
  ASSERT_EQ(parts.size(), 7u);
  EXPECT_EQ(parts[0].text, "She has ");
  EXPECT_EQ(parts[1].type, PartType::Python);
  EXPECT_EQ(parts[1].text, "2*3");
  EXPECT_EQ(parts[2].type, PartType::PythonOutput);
  EXPECT_EQ(parts[2].text, "6");
  EXPECT_EQ(parts[3].text, "6 eggs ");
  EXPECT_EQ(parts[6].text, "5.\n#### 5");
  auto odd = tok::gsm8k_answer_parts("<<>> and <<a>b>> and <<x=y=z>>");  // rsplit on the last '='
  ASSERT_EQ(odd.size(), 3u);
  EXPECT_EQ(odd[0].text, "<<>> and <<a>b>> and ");
  EXPECT_EQ(odd[1].text, "x=y");
  EXPECT_EQ(odd[2].text, "z");
}

TEST(ChatGsm8k, FiftyRealRecords) {
  if (test::data_dir().empty()) GTEST_SKIP() << "no shared data";
  const auto& t = tokenizer();
  std::ifstream f(test::data_dir() + "/gsm8k/train.jsonl");
  std::string line;
  const std::regex call("<<([^>]+)=([^>=]*)>>");  // GSM8K calls: expr=result
  const uint32_t out_start = t.special_id("<|output_start|>"), out_end = t.special_id("<|output_end|>");
  int n = 0, calls = 0;
  for (; n < 50 && std::getline(f, line); ++n) {
    auto rec = nlohmann::json::parse(line);
    std::string q = rec["question"], a = rec["answer"];
    auto r = tok::render_conversation(t, tok::conversation_from_json(rec, "gsm8k"), 0);
    ASSERT_EQ(r.ids.size(), r.mask.size());
    std::string full = "<|bos|><|user_start|>" + q + "<|user_end|><|assistant_start|>" +
                       std::regex_replace(a, call, "<|python_start|>$1<|python_end|><|output_start|>$2<|output_end|>") +
                       "<|assistant_end|>";
    EXPECT_EQ(t.decode(r.ids), full) << "record " << n;
    // The trained tokens are exactly the answer text and the calls, never the results.
    std::vector<uint32_t> trained;
    for (size_t i = 0; i < r.ids.size(); ++i)
      if (r.mask[i]) trained.push_back(r.ids[i]);
    EXPECT_EQ(t.decode(trained), std::regex_replace(a, call, "<|python_start|>$1<|python_end|>") + "<|assistant_end|>")
        << "record " << n;
    bool in_output = false;
    for (size_t i = 0; i < r.ids.size(); ++i) {
      if (r.ids[i] == out_start) { in_output = true; ++calls; }
      if (in_output) EXPECT_EQ(r.mask[i], 0) << "record " << n << " token " << i;
      if (r.ids[i] == out_end) in_output = false;
    }
  }
  EXPECT_EQ(n, 50);
  EXPECT_GT(calls, 50);  // GSM8K answers average several calculator calls
}
