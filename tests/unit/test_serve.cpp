// serve (issue 12): the stop matcher (stop strings split across tokens are cut exactly and never
// leak in part; streamed text never splits a UTF-8 character) and the request checks (each
// mistake an ApiError with its status, code and param), on a byte-level tokenizer.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <random>

#include "serve/openai_json.h"
#include "serve/request.h"
#include "serve/stop_text.h"
#include "serve_test_util.h"
#include "tokenizer/tokenizer.h"

namespace {

using kiln::serve::StopText;

// Feeds `pieces` one by one; returns (text sent, whether it stopped), checking after every push
// that the text sent so far is valid UTF-8 and contains no prefix of a stop string at its end
// that later turned into a match.
std::pair<std::string, bool> run(const std::vector<std::string>& stops, const std::vector<std::string>& pieces) {
  StopText s(stops);
  std::string out;
  for (const auto& p : pieces) {
    auto o = s.push(p);
    out += o.text;
    if (o.stopped) return {out, true};
  }
  out += s.flush();
  return {out, false};
}

bool valid_utf8_prefix_free(const std::string& s) {  // every character complete
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

TEST(ServeStopText, MatchAcrossTokenBoundaries) {
  EXPECT_EQ(run({"END"}, {"abc E", "N", "D tail"}), std::make_pair(std::string("abc "), true));
  EXPECT_EQ(run({"END"}, {"E", "N", "x", "E", "ND"}), std::make_pair(std::string("ENx"), true));
  // A held prefix that does not complete is released, not lost.
  EXPECT_EQ(run({"END"}, {"abc E", "N", "d"}), std::make_pair(std::string("abc ENd"), false));
  EXPECT_EQ(run({"END"}, {"abc EN"}), std::make_pair(std::string("abc EN"), false));  // flushed at the end
  // The earliest of several stop strings wins; overlapping prefixes ("aab" after "aa").
  EXPECT_EQ(run({"xyz", "bc"}, {"a", "b", "cxyz"}), std::make_pair(std::string("a"), true));
  EXPECT_EQ(run({"aab"}, {"a", "a", "a", "b"}), std::make_pair(std::string("a"), true));
  EXPECT_EQ(run({}, {"no", " stops"}), std::make_pair(std::string("no stops"), false));
  EXPECT_EQ(run({"\n\n"}, {"line\n", "\nnext"}), std::make_pair(std::string("line"), true));
}

TEST(ServeStopText, NeverLeaksAPartialMatch) {
  // After each push, the text sent so far must not end in a proper prefix of the stop string that
  // the rest of the stream completes: check every split of a text into single bytes.
  const std::string stop = "<STOP>";
  const std::string text = "ab<ST<STOP>cd";
  StopText s({stop});
  std::string sent;
  for (char c : text) {
    auto o = s.push(std::string(1, c));
    sent += o.text;
    EXPECT_EQ(sent.find('<', 5), std::string::npos) << "sent part of the match: " << sent;
    if (o.stopped) break;
  }
  EXPECT_EQ(sent, "ab<ST");
}

TEST(ServeStopText, NeverSplitsUtf8) {
  // "é" (2 bytes), "€" (3), "😀" (4), split into single bytes; stop string "€x".
  const std::string text = "h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xE2\x82\xACx!";
  StopText s({"\xE2\x82\xACx"});
  std::string sent;
  bool stopped = false;
  for (char c : text) {
    auto o = s.push(std::string(1, c));
    EXPECT_TRUE(valid_utf8_prefix_free(o.text)) << "a piece splits a character";
    sent += o.text;
    if ((stopped = o.stopped)) break;
  }
  EXPECT_TRUE(stopped);
  EXPECT_EQ(sent, "h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 ");
}

TEST(ServeStopText, RandomSplitsEqualTheWholeText) {
  // Any split of the same bytes gives the same text: the cut never depends on token boundaries.
  std::mt19937 rng(1);
  const std::string base = "ta\xC3\xA9 ti\xE2\x82\xAC tu STOP t\xF0\x9F\x98\x80";
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<std::string> pieces;
    for (size_t i = 0; i < base.size();) {
      const size_t n = 1 + rng() % 4;
      pieces.push_back(base.substr(i, n));
      i += n;
    }
    auto [text, stopped] = run({"STOP", "\xE2\x82\xAC t"}, pieces);
    EXPECT_TRUE(stopped);
    EXPECT_EQ(text, "ta\xC3\xA9 ti");
    auto [all, stopped2] = run({"never"}, pieces);
    EXPECT_FALSE(stopped2);
    EXPECT_EQ(all, base);
  }
}

// ---- request checks ----
using kiln::serve::test::bytes_tok;
using kiln::serve::test::limits;

// The ApiError of a chat body (status, code, param), or status 0 when accepted.
std::tuple<int, std::string, std::string> chat_error(const std::string& body) {
  try {
    kiln::serve::parse_chat_request(body, bytes_tok(), limits());
  } catch (const kiln::serve::ApiError& e) {
    return {e.status, e.code, e.param};
  }
  return {0, "", ""};
}

TEST(ServeRequest, AcceptsAndRenders) {
  auto job = kiln::serve::parse_chat_request(
      R"({"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}],
          "temperature":0.5,"top_p":0.9,"top_k":7,"max_tokens":10,"n":2,"seed":-3,"stop":"x","stream":true,
          "stream_options":{"include_usage":true},"model":"whatever","presence_penalty":0})",
      bytes_tok(), limits());
  const auto& t = bytes_tok();
  // <|bos|> <|user_start|> "be brief\n\nhi" <|user_end|> <|assistant_start|>
  EXPECT_EQ(job.prompts[0].size(), 4u + std::string("be brief\n\nhi").size());
  EXPECT_EQ(job.prompts[0].front(), t.bos_id());
  EXPECT_EQ(job.prompts[0].back(), t.special_id("<|assistant_start|>"));
  EXPECT_EQ(job.options.temperature, 0.5);
  EXPECT_EQ(job.options.top_p, 0.9);
  EXPECT_EQ(job.options.top_k, 7);
  EXPECT_EQ(job.options.max_new_tokens, 10);
  EXPECT_EQ(job.options.seed, static_cast<uint64_t>(-3));
  EXPECT_EQ(job.n, 2);
  EXPECT_EQ(job.stop, std::vector<std::string>{"x"});
  EXPECT_TRUE(job.stream && job.include_usage && job.chat);
  // No max_tokens: what fits, at most the default.
  auto d = kiln::serve::parse_chat_request(R"({"messages":[{"role":"user","content":"hi"}]})", bytes_tok(), limits());
  EXPECT_EQ(d.options.max_new_tokens, 64 - 6);
  auto c = kiln::serve::parse_completion_request(R"({"prompt":["ab"],"max_completion_tokens":3})", bytes_tok(), limits());
  EXPECT_EQ(c.prompts[0], (std::vector<int64_t>{t.bos_id(), 'a', 'b'}));
  EXPECT_EQ(c.options.max_new_tokens, 3);
  EXPECT_FALSE(c.chat);
}

TEST(ServeRequest, EveryMistakeIsA400WithItsParam) {
  const std::string u = R"([{"role":"user","content":"hi"}])";
  struct Case {
    std::string body, code, param;
  };
  const std::vector<Case> cases = {
      {"{", "invalid_json", ""},
      {"[1]", "invalid_json", ""},
      {"{}", "missing_required_parameter", "messages"},
      {R"({"messages":[]})", "invalid_value", "messages"},
      {R"({"messages":[{"role":"robot","content":"hi"}]})", "invalid_role", "messages"},
      {R"({"messages":[{"role":"user"}]})", "invalid_type", "messages"},
      {R"({"messages":[{"role":"user","content":7}]})", "invalid_type", "messages"},
      {R"({"messages":[{"role":"user","content":[{"type":5,"text":"x"}]}]})", "invalid_type", "messages"},
      {R"({"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]})", "invalid_role", "messages"},
      {R"({"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]})", "invalid_role", "messages"},
      {R"({"messages":)" + u + R"(,"temperature":2.01})", "invalid_value", "temperature"},
      {R"({"messages":)" + u + R"(,"temperature":"1"})", "invalid_type", "temperature"},
      {R"({"messages":)" + u + R"(,"top_p":0})", "invalid_value", "top_p"},
      {R"({"messages":)" + u + R"(,"top_p":1.5})", "invalid_value", "top_p"},
      {R"({"messages":)" + u + R"(,"top_k":-1})", "invalid_value", "top_k"},
      {R"({"messages":)" + u + R"(,"top_k":1.5})", "invalid_type", "top_k"},
      {R"({"messages":)" + u + R"(,"n":5})", "invalid_value", "n"},
      {R"({"messages":)" + u + R"(,"n":0})", "invalid_value", "n"},
      {R"({"messages":)" + u + R"(,"max_tokens":0})", "invalid_value", "max_tokens"},
      {R"({"messages":)" + u + R"(,"max_tokens":18446744073709551615})", "invalid_value", "max_tokens"},
      {R"({"messages":)" + u + R"(,"max_tokens":59})", "context_length_exceeded", "max_tokens"},
      {R"({"messages":)" + u + R"(,"stop":["a","b","c","d","e"]})", "invalid_value", "stop"},
      {R"({"messages":)" + u + R"(,"stop":[""]})", "invalid_value", "stop"},
      {R"({"messages":)" + u + R"(,"stop":[1]})", "invalid_type", "stop"},
      {R"({"messages":)" + u + R"(,"seed":1.5})", "invalid_type", "seed"},
      {R"({"messages":)" + u + R"(,"stream":"yes"})", "invalid_type", "stream"},
      {R"({"messages":)" + u + R"(,"stream_options":{"include_usage":true}})", "invalid_value", "stream_options"},
      {R"({"messages":[{"role":"user","content":")" + std::string(8001, 'x') + R"("}]})", "string_above_max_length",
       "messages"},
      {R"({"messages":[{"role":"user","content":")" + std::string(60, 'x') + R"("}]})", "context_length_exceeded",
       "messages"},
  };
  for (const auto& c : cases) {
    auto [status, code, param] = chat_error(c.body);
    EXPECT_EQ(status, 400) << c.body.substr(0, 120);
    EXPECT_EQ(code, c.code) << c.body.substr(0, 120);
    EXPECT_EQ(param, c.param) << c.body.substr(0, 120);
  }
  // 58 tokens of room: max_tokens 58 is accepted, 59 is not (above).
  EXPECT_EQ(std::get<0>(chat_error(R"({"messages":)" + u + R"(,"max_tokens":58})")), 0);
}

TEST(ServeJson, InvalidUtf8IsReplacedNotThrown) {
  kiln::serve::ReplyHead h{true, "chatcmpl-1", 1, "m"};
  const std::string s = kiln::serve::sse(kiln::serve::chunk_json(h, 0, "a\xFF" "b", false, ""));
  EXPECT_NE(s.find("a\xEF\xBF\xBD" "b"), std::string::npos);  // U+FFFD
  EXPECT_EQ(s.rfind("data: ", 0), 0u);
  EXPECT_EQ(s.substr(s.size() - 2), "\n\n");
}

}  // namespace

// A base model's tokenizer (GPT-2's: only <|endoftext|>) has no chat template: /v1/chat/completions
// says so as a 400 naming /v1/completions, which still works.
TEST(ServeRequest, ChatWithoutChatTokensIsA400PointingToCompletions) {
  const auto t = kiln::tok::Tokenizer::from_merges({}, "", {}, {"<|endoftext|>"});
  try {
    kiln::serve::parse_chat_request(R"({"messages":[{"role":"user","content":"hi"}]})", t, limits());
    FAIL() << "accepted a chat request without chat tokens";
  } catch (const kiln::serve::ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.code, "chat_not_supported");
    EXPECT_NE(std::string(e.what()).find("/v1/completions"), std::string::npos) << e.what();
  }
  auto c = kiln::serve::parse_completion_request(R"({"prompt":"ab","max_tokens":3})", t, limits());
  EXPECT_EQ(c.prompts[0].front(), t.bos_id());
  // A GPT-2 is fed the text alone; an empty prompt still gets <|endoftext|>.
  auto L = limits();
  L.bos_prefix = false;
  EXPECT_EQ(kiln::serve::parse_completion_request(R"({"prompt":"ab"})", t, L).prompts[0], (std::vector<int64_t>{'a', 'b'}));
  EXPECT_EQ(kiln::serve::parse_completion_request(R"({"prompt":""})", t, L).prompts[0],
            (std::vector<int64_t>{t.bos_id()}));
}
