// Tokenizer behaviour: byte-level (vocab 265) and trained BPE round-trip every shared data file
// (invalid UTF-8, the BOM book, a gzip file), special tokens, determinism, the tie rule, file
// errors, batch = single encode, block-wise = whole encode. Needs ../shared/data (else skips).
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "tok_test_util.h"
#include "tokenizer/bpe_train.h"
#include "core/corpus.h"
#include "tokenizer/split.h"

using namespace kiln;
using kiln::test::slurp;
using kiln::test::spit;

namespace {
std::vector<uint32_t> to_u32(std::string_view s) {
  std::vector<uint32_t> v;
  for (unsigned char c : s) v.push_back(c);
  return v;
}
}  // namespace

TEST(TokByteLevel, ZeroMergesIsPlainBytes) {
  if (test::data_dir().empty()) GTEST_SKIP() << "no shared data";
  tok::TrainOptions o;
  o.inputs = {test::data_dir() + "/tinyshakespeare/input.txt"};
  o.vocab_size = 265;
  auto t = tok::train_tokenizer(o);
  EXPECT_EQ(t.vocab_size(), 265u);
  EXPECT_TRUE(t.merges().empty());
  EXPECT_EQ(t.bos_id(), 256u);
  for (size_t i = 0; i < tok::special_tokens().size(); ++i)
    EXPECT_EQ(t.special_id(tok::special_tokens()[i]), 256u + i);
  std::string s = "ROMEO:\nWherefore art thou \xc3\xa9?";
  EXPECT_EQ(t.encode(s), to_u32(s));
  EXPECT_EQ(t.token_bytes().size(), 265u);
  EXPECT_EQ(t.token_bytes()[65], 1);
  EXPECT_EQ(t.token_bytes()[256], 0);
}

TEST(TokTrain, VocabTooSmallIsAnError) {
  tok::TrainOptions o;
  o.inputs = {"/nonexistent"};
  o.vocab_size = 264;
  try {
    tok::train_tokenizer(o);
    FAIL() << "expected kiln::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("265"), std::string::npos) << e.what();
  }
}

TEST(TokRoundTrip, EverySharedDataFile) {
  if (test::data_dir().empty()) GTEST_SKIP() << "no shared data";
  const auto* bpe = test::shakespeare_512();
  auto bytes = tok::Tokenizer::from_merges({});
  size_t files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(test::data_dir())) {
    if (!e.is_regular_file()) continue;
    std::string text = slurp(e.path().string());
    ASSERT_EQ(bpe->decode(bpe->encode(text)), text) << e.path();
    ASSERT_EQ(bytes.decode(bytes.encode(text)), text) << e.path();
    ++files;
  }
  EXPECT_GT(files, 100u);  // mmlu alone has 114 csv files
}

TEST(TokRoundTrip, InvalidUtf8BomAndControlBytes) {
  if (test::data_dir().empty()) GTEST_SKIP() << "no shared data";
  const auto* t = test::shakespeare_512();
  const std::string cases[] = {
      std::string("\xEF\xBB\xBFThe Adventures"),        // BOM first
      std::string("bad \xff\xfe bytes \xc3( and \x80\x80"),  // invalid sequences
      std::string("ends mid-char caf\xc3"),
      std::string("nul\0inside", 10),
      std::string("\xed\xa0\x80 surrogate, overlong \xc0\xaf"),
      std::string("    \n\n\t\r\n  trailing spaces   "),
      std::string("numbers 1234567 and 'll 've it's"),
  };
  for (const auto& s : cases) EXPECT_EQ(t->decode(t->encode(s)), s) << s;
  std::string book = slurp(test::data_dir() + "/prose/pg74.txt");
  ASSERT_EQ(book.substr(0, 3), "\xEF\xBB\xBF");
  EXPECT_EQ(t->decode(t->encode(book)), book);
}

TEST(TokSplit, ChunksCoverTextAndFollowThePattern) {
  tok::Splitter sp(tok::kGpt4Pattern);
  std::vector<std::string> got;
  sp.split("Hello world's 12345 !!\n\n  x\xff", [&](std::string_view c) { got.emplace_back(c); });
  std::vector<std::string> want = {"Hello", " world", "'s", " ", "12", "34", "5", " !!\n\n", " ", " x", "\xff"};
  EXPECT_EQ(got, want);
}

TEST(TokSplit, SafeCutGivesTheSameChunks) {
  if (test::data_dir().empty()) GTEST_SKIP() << "no shared data";
  std::string text = slurp(test::data_dir() + "/prose/pg1661.txt");
  tok::Splitter sp(tok::kGpt4Pattern);
  std::vector<std::string> whole, parts;
  sp.split(text, [&](std::string_view c) { whole.emplace_back(c); });
  std::string_view rest = text;
  while (!rest.empty()) {  // cut at the last safe point of every 4 KB window
    size_t cut = tok::safe_cut(rest.substr(0, 4096));
    if (cut == 0 || rest.size() <= 4096) cut = rest.size();
    sp.split(rest.substr(0, cut), [&](std::string_view c) { parts.emplace_back(c); });
    rest.remove_prefix(cut);
  }
  EXPECT_EQ(parts, whole);
}

TEST(TokSpecials, OrdinaryVersusAllowed) {
  auto t = tok::Tokenizer::from_merges({});
  std::string s = "<|bos|>hi<|user_start|><|bo";
  EXPECT_EQ(t.encode(s), to_u32(s));  // ordinary: the names are just bytes
  auto ids = t.encode_with_specials(s);
  std::vector<uint32_t> want = {t.bos_id(), 'h', 'i', t.special_id("<|user_start|>"), '<', '|', 'b', 'o'};
  EXPECT_EQ(ids, want);
  EXPECT_EQ(t.decode(ids), s);
  EXPECT_THROW(t.special_id("<|nope|>"), Error);
  EXPECT_THROW(t.decode({t.vocab_size()}), Error);
}

TEST(TokTrain, DeterministicWhateverTheThreadCount) {
  if (test::data_dir().empty()) GTEST_SKIP() << "no shared data";
  tok::TrainOptions o;
  o.inputs = {test::data_dir() + "/prose/pg11.txt", test::data_dir() + "/gsm8k/test.jsonl"};
  o.field = "question";
  o.vocab_size = 700;
  o.threads = 1;
  auto a = tok::train_tokenizer(o);
  o.threads = 3;
  auto b = tok::train_tokenizer(o);
  EXPECT_EQ(a.to_json(), b.to_json());
  EXPECT_EQ(a.sha256(), b.sha256());
  EXPECT_EQ(a.merges().size(), 700u - 265u);
}

TEST(TokTrain, TiesGoToTheSmallestPair) {
  // Every pair occurs once: the first merge must be the smallest (first, second) pair.
  tok::ChunkCounts counts{{"ab", 1}, {" cd", 1}, {"zy", 1}};
  auto merges = tok::train_bpe(counts, 1);
  ASSERT_EQ(merges.size(), 1u);
  EXPECT_EQ(merges[0], tok::Merge(' ', 'c'));
  // A higher count beats a smaller pair.
  counts["zy"] = 2;
  EXPECT_EQ(tok::train_bpe(counts, 1)[0], tok::Merge('z', 'y'));
  // Training stops when no pair is left.
  EXPECT_EQ(tok::train_bpe({{"ab", 3}}, 10).size(), 1u);
}

TEST(TokTrain, MaxCharsAndDocCapLimitWhatIsRead) {
  if (test::data_dir().empty()) GTEST_SKIP() << "no shared data";
  tok::TrainOptions o;
  o.inputs = {test::data_dir() + "/gsm8k/test.jsonl"};
  o.field = "answer";
  o.vocab_size = 300;
  o.doc_cap = 50;
  tok::TrainStats st;
  tok::train_tokenizer(o, &st);
  EXPECT_EQ(st.docs, 1319u);
  EXPECT_LE(st.chars, 1319u * 50);
  o.doc_cap = 0;
  o.max_chars = 10000;
  tok::train_tokenizer(o, &st);
  EXPECT_EQ(st.chars, 10000u);
  EXPECT_LT(st.docs, 1319u);
  o.field = "nope";
  EXPECT_THROW(tok::train_tokenizer(o), Error);
}

TEST(TokFile, SaveLoadKeepsEverything) {
  if (test::data_dir().empty()) GTEST_SKIP() << "no shared data";
  const auto* t = test::shakespeare_512();
  std::string path = test::temp_dir() + "/tok.json";
  t->save(path);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  auto u = tok::Tokenizer::load(path);
  EXPECT_EQ(u.sha256(), t->sha256());
  EXPECT_EQ(u.sha256(), tok::Tokenizer::from_merges(t->merges()).sha256());
  EXPECT_EQ(u.merges(), t->merges());
  EXPECT_EQ(u.token_bytes(), t->token_bytes());
  std::string text = slurp(test::data_dir() + "/prose/pg84.txt");
  EXPECT_EQ(u.encode(text), t->encode(text));
  EXPECT_LT(u.encode(text).size(), text.size() * 2 / 3);  // merges learned on Shakespeare compress prose
}

TEST(TokFile, BadFilesNameThePath) {
  std::string dir = test::temp_dir();
  auto expect_error = [](const std::string& path, const std::string& needle) {
    try {
      tok::Tokenizer::load(path);
      ADD_FAILURE() << "expected kiln::Error for " << path;
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find(path), std::string::npos) << m;
      EXPECT_NE(m.find(needle), std::string::npos) << m;
    }
  };
  expect_error(dir + "/missing.json", "cannot open");
  spit(dir + "/garbage.json", "{\"format\": ");
  expect_error(dir + "/garbage.json", "not valid JSON");
  std::string good = tok::Tokenizer::from_merges({{'a', 'b'}, {256, 'c'}}).to_json();
  std::string bad = good;
  bad.replace(bad.find("[256,99]"), 8, "[999,99]");
  spit(dir + "/future.json", bad);
  expect_error(dir + "/future.json", "does not exist yet");
  bad = good;
  bad.replace(bad.find("\"<|bos|>\":258"), 13, "\"<|bos|>\":259");
  spit(dir + "/specials.json", bad);
  expect_error(dir + "/specials.json", "<|bos|>");
  spit(dir + "/ok.json", good);
  EXPECT_EQ(tok::Tokenizer::load(dir + "/ok.json").encode("abc"), std::vector<uint32_t>{257});
}

TEST(TokEncode, BatchAndBlocksEqualWhole) {
  if (test::data_dir().empty()) GTEST_SKIP() << "no shared data";
  const auto* t = test::shakespeare_512();
  std::string path = test::data_dir() + "/prose/pg1342.txt";
  std::string text = slurp(path);
  auto whole = t->encode(text);
  kiln::TextBlockReader r(path, 0, text.size(), tok::safe_cut, 4096);
  std::vector<std::string> blocks;
  std::string b;
  while (r.next(b)) blocks.push_back(b);
  EXPECT_GT(blocks.size(), 100u);
  std::vector<uint32_t> joined;
  for (const auto& ids : t->encode_batch(blocks)) joined.insert(joined.end(), ids.begin(), ids.end());
  EXPECT_EQ(joined, whole);
  std::vector<std::string> docs = {"", "a", text.substr(0, 1000), "\xff"};
  auto batch = t->encode_batch(docs);
  for (size_t i = 0; i < docs.size(); ++i) EXPECT_EQ(batch[i], t->encode(docs[i]));
}
