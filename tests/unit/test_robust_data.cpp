// Hostile and damaged inputs to the data side (issue 11): BPE on one huge chunk (same output as
// the scan, linear step count), shard ids past the vocabulary, safetensors headers that would
// force huge allocations, incomplete prepared datasets, checkpoint JSON keys, odd head_dim.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/config.h"
#include "core/error.h"
#include "data/shard.h"
#include "data/shard_dataset.h"
#include "data/shard_h5.h"
#include "data/shard_writer.h"
#include "model/safetensors.h"
#include "tok_test_util.h"
#include "tokenizer/bpe_merge.h"
#include "ckpt/checkpoint.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {

// A tokenizer trained on English words (with spaces), so its merges apply inside a letter run.
const tok::Tokenizer& words_tokenizer() {
  static const tok::Tokenizer t = [] {
    const char* words[] = {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "then",
                           "runs", "into", "forest", "where", "there", "are", "many", "trees", "ing", "tion"};
    std::mt19937 rng(7);
    std::string text;
    for (int i = 0; i < 40000; ++i) text += std::string(words[rng() % 20]) + (i % 13 ? " " : ".\n");
    const std::string path = fs::temp_directory_path() / ("kiln_words_" + std::to_string(::getpid()) + ".txt");
    test::spit(path, text);
    tok::TrainOptions o;
    o.inputs = {path};
    o.vocab_size = 330;  // 65 merges: about all that 20 words allow
    auto tk = tok::train_tokenizer(o);
    fs::remove(path);
    return tk;
  }();
  return t;
}

tok::PairMap ranks_of(const tok::Tokenizer& t) {
  tok::PairMap m;
  m.reserve(t.merges().size());
  for (size_t r = 0; r < t.merges().size(); ++r) m.insert(tok::pair_key(t.merges()[r].first, t.merges()[r].second), uint32_t(r));
  return m;
}

// `bytes` bytes of words run together: one chunk for the split pattern, merges all through it.
std::string letter_run(size_t bytes) {
  const char* words[] = {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "forest", "trees"};
  std::mt19937 rng(11);
  std::string s;
  while (s.size() < bytes) s += words[rng() % 10];
  s.resize(bytes);
  return s;
}

std::vector<uint32_t> as_bytes(std::string_view s) { return {s.begin(), s.end()}; }

}  // namespace

TEST(BpeMerge, HeapEqualsScanOnRandomChunks) {
  const auto& t = words_tokenizer();
  const auto ranks = ranks_of(t);
  std::mt19937 rng(3);
  const std::string alphabet = "thequickbrownfxjmpsvlazydg ";
  for (int trial = 0; trial < 300; ++trial) {
    std::string s(2 + rng() % 1500, ' ');
    for (auto& c : s) c = alphabet[rng() % alphabet.size()];
    auto a = as_bytes(s), b = a;
    size_t na = tok::bpe_merge_scan(a, a.size(), ranks), nb = tok::bpe_merge_heap(b, b.size(), ranks);
    a.resize(na);
    b.resize(nb);
    ASSERT_EQ(a, b) << "chunk of " << s.size() << " bytes: " << s.substr(0, 60);
    ASSERT_EQ(t.decode(b), s);
  }
  // A real vocabulary (tinyshakespeare, 247 merges) on its own text with the spaces taken out.
  const tok::Tokenizer* sh = test::shakespeare_512();
  if (!sh) GTEST_SKIP() << "no shared data for the tinyshakespeare half";
  const auto sranks = ranks_of(*sh);
  std::string letters;
  for (char c : test::slurp(test::data_dir() + "/tinyshakespeare/input.txt"))
    if (c != ' ' && c != '\n') letters += c;
  for (int trial = 0; trial < 200; ++trial) {
    const size_t len = 2 + rng() % 3000, at = rng() % (letters.size() - len);
    auto a = as_bytes(std::string_view(letters).substr(at, len)), b = a;
    a.resize(tok::bpe_merge_scan(a, a.size(), sranks));
    b.resize(tok::bpe_merge_heap(b, b.size(), sranks));
    ASSERT_EQ(a, b) << "tinyshakespeare bytes [" << at << ", +" << len << ")";
  }
}

TEST(BpeMerge, LongLetterRunIsLinear) {
  const auto& t = words_tokenizer();
  const auto ranks = ranks_of(t);
  // 64 KB: both algorithms agree, and the scan's step count dwarfs the heap's.
  const std::string small = letter_run(64 << 10);
  auto a = as_bytes(small), b = a;
  uint64_t scan_ops = 0, heap_ops = 0;
  size_t na = tok::bpe_merge_scan(a, a.size(), ranks, &scan_ops);
  size_t nb = tok::bpe_merge(b, b.size(), ranks, &heap_ops);
  a.resize(na);
  b.resize(nb);
  ASSERT_EQ(a, b);
  EXPECT_LT(na, small.size() / 2) << "merges must apply to the run";
  ASSERT_LE(heap_ops, 3 * small.size()) << "the merge of one long chunk is not linear in its length";
  EXPECT_GT(scan_ops, 100 * heap_ops);
  // 1 MB through the real encode: at most 3 steps per byte (initial pairs + 2 per merge).
  const std::string big = letter_run(1 << 20);
  auto c = as_bytes(big);
  uint64_t ops = 0;
  size_t nc = tok::bpe_merge(c, c.size(), ranks, &ops);
  EXPECT_LE(ops, 3 * big.size());
  const auto ids = t.encode(big);
  EXPECT_EQ(ids.size(), nc);
  EXPECT_EQ(t.decode(ids), big);
}

TEST(ShardIds, IdPastVocabNamesFileAndOffset) {
  const std::string dir = test::temp_dir(), path = dir + "/train_0000.h5";
  {
    data::ShardWriter w(path, {1000, 5, "sha", "test", "test"}, false);
    std::vector<uint32_t> ids(5000, 7);
    ids[4321] = 512;  // valid for 1000, not for the 300 the file will claim
    w.add_document(ids);
    w.finish();
  }
  {
    std::lock_guard<std::mutex> g(data::hdf5_mutex());
    data::h5::Hid f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    H5Adelete(f.get(), "vocab_size");
    data::h5::write_attr_u64(f.get(), "vocab_size", 300);
  }
  data::ShardReader r(path);
  std::vector<uint32_t> buf(4000);
  r.read_tokens(0, 4000, buf.data());  // the bad id is not in this chunk
  try {
    r.read_tokens(4000, 1000, buf.data());
    FAIL() << "an id >= vocab_size was returned";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find("offset 4321"), std::string::npos) << m;
    EXPECT_NE(m.find("512"), std::string::npos) << m;
  }
}

namespace {
std::string safetensors_bytes(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + std::string(data_bytes, '\0');
}
void expect_error(const std::string& path, const std::string& needle) {
  try {
    model::load_safetensors(path);
    FAIL() << "loaded a hostile file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(SafetensorsHostile, HugeShapesAndOffsetsFailBeforeAllocating) {
  const std::string dir = test::temp_dir(), p = dir + "/x.safetensors";
  // 2^42 floats claimed (16 TB): must fail on the offsets / file size, not try to allocate.
  test::spit(p, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1099511627776,4],"data_offsets":[0,17592186044416]}})", 16));
  expect_error(p, "data ends at byte 17592186044416");
  // An element count that overflows 64 bits.
  test::spit(p, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})", 16));
  expect_error(p, "more elements than any file can hold");
  // Overlapping byte ranges.
  test::spit(p, safetensors_bytes(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}})", 16));
  expect_error(p, "overlap");
  // A header length past the end of the file.
  std::string s = safetensors_bytes("{}", 0);
  s[0] = '\x7f';
  test::spit(p, s);
  expect_error(p, "header length");
}

TEST(PreparedDataset, IncompleteSwapAndMissingShardAreRefused) {
  const std::string dir = test::temp_dir();
  std::vector<std::string> shards;
  for (const char* n : {"train_0000.h5", "train_0001.h5"}) {
    data::ShardWriter w(dir + "/" + n, {300, 299, "sha", "test", "test"}, false);
    w.add_document({1, 2, 3});
    w.finish();
    shards.push_back(dir + "/" + n);
  }
  EXPECT_EQ(data::list_shards(dir + "/train_*.h5").size(), 2u);  // no manifest: written by hand, accepted
  test::spit(dir + "/" + data::kDatasetIncomplete, "x");
  try {
    data::list_shards(dir);
    FAIL() << "a half-swapped dataset was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("interrupted"), std::string::npos) << e.what();
  }
  fs::remove(dir + "/" + data::kDatasetIncomplete);
  test::spit(dir + "/" + data::kDatasetManifest,
             R"({"format":"kiln.dataset","format_version":1,"shards":{"train_0000.h5":3,"train_0001.h5":3,"train_0002.h5":3}})");
  try {
    data::list_shards(dir + "/train_*.h5");
    FAIL() << "a dataset missing a shard its manifest lists was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train_0002.h5"), std::string::npos) << e.what();
  }
}

TEST(CheckpointJson, MissingOrMistypedKeyNamesFileAndKey) {
  const std::string dir = test::temp_dir();
  test::spit(dir + "/meta.json", R"({"format":"kiln.checkpoint","format_version":2,"world_size":1,"crc32":{}})");
  try {
    ckpt::load_checkpoint(dir, 0, 1, ckpt::ReadScope::WithRankFiles);
    FAIL();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(dir + "/meta.json"), std::string::npos) << m;
    EXPECT_NE(m.find("'step'"), std::string::npos) << m;
  }
  test::spit(dir + "/meta.json", R"({"format":"kiln.checkpoint","format_version":2,"step":1e300,"world_size":1})");
  try {
    ckpt::load_checkpoint(dir, 0, 1, ckpt::ReadScope::WithRankFiles);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'step' has the wrong type"), std::string::npos) << e.what();
  }
  test::spit(dir + "/meta.json", R"({"step":)");
  EXPECT_THROW(ckpt::load_checkpoint(dir, 0, 1, ckpt::ReadScope::WithRankFiles), Error);
}

TEST(ConfigShape, OddHeadDimIsAConfigError) {
  try {
    load_config_text("model:\n  depth: 2\n  width: 130\n  n_head: 2\n", "odd.yaml");
    FAIL() << "head_dim 65 was accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("head_dim 65"), std::string::npos) << m;
    EXPECT_NE(m.find("model.n_head"), std::string::npos) << m;
  }
}
