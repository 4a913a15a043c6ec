// HDF5 token shards: writer -> reader round trip (uint16 on disk widened to uint32; uint32 above
// 65,536 tokens), loss masks, tmp + rename, and the reader's refusals (other tokenizer hash or
// vocab, truncated file, missing dataset or attribute) with the file named. No shared data needed.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <random>
#include <thread>

#include "core/error.h"
#include "data/shard.h"
#include "data/shard_writer.h"
#include "tok_test_util.h"

using namespace kiln;
using data::ShardMeta;
using data::ShardReader;
using data::ShardWriter;

namespace {
const std::string kSha(64, 'a');

std::vector<std::vector<uint32_t>> random_docs(uint32_t vocab, int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<uint32_t>> docs(n);
  for (auto& d : docs) {
    d.resize(1 + rng() % 300);
    for (auto& x : d) x = rng() % vocab;
  }
  return docs;
}

std::string write_shard(const std::string& path, uint32_t vocab, const std::vector<std::vector<uint32_t>>& docs,
                        bool mask = false) {
  ShardWriter w(path, ShardMeta{vocab, 7, kSha, "unit test", "kiln tests"}, mask);
  for (const auto& d : docs) {
    std::vector<uint8_t> m(d.size());
    for (size_t i = 0; i < d.size(); ++i) m[i] = d[i] & 1;
    w.add_document(d, mask ? &m : nullptr);
  }
  w.finish();
  return path;
}

size_t disk_token_bytes(const std::string& path) {
  std::lock_guard<std::mutex> g(data::hdf5_mutex());
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "tokens", H5P_DEFAULT);
  hid_t t = H5Dget_type(d);
  size_t s = H5Tget_size(t);
  H5Tclose(t); H5Dclose(d); H5Fclose(f);
  return s;
}

void expect_refused(const std::string& path, const std::string& needle, const std::string& sha = "", int64_t vocab = -1) {
  try {
    ShardReader r(path, sha, vocab);
    ADD_FAILURE() << "expected kiln::Error (" << needle << ") for " << path;
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find(needle), std::string::npos) << m;
  }
}

// Edits a finished shard with the HDF5 API: drop a dataset or an attribute.
void h5_edit(const std::string& path, const char* dataset, const char* attr) {
  std::lock_guard<std::mutex> g(data::hdf5_mutex());
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (dataset) H5Ldelete(f, dataset, H5P_DEFAULT);
  if (attr) H5Adelete(f, attr);
  H5Fclose(f);
}
}  // namespace

TEST(ShardRoundTrip, Uint16OnDiskWidenedOnRead) {
  std::string dir = test::temp_dir();
  auto docs = random_docs(265, 50, 1);
  std::string p = write_shard(dir + "/train_0000.h5", 265, docs);
  EXPECT_FALSE(std::filesystem::exists(p + ".tmp"));
  EXPECT_EQ(disk_token_bytes(p), 2u);
  ShardReader r(p, kSha, 265);
  std::vector<uint32_t> flat;
  for (const auto& d : docs) flat.insert(flat.end(), d.begin(), d.end());
  EXPECT_EQ(r.info().num_tokens, flat.size());
  EXPECT_EQ(r.info().num_docs, 50u);
  EXPECT_EQ(r.info().bos_id, 7u);
  EXPECT_EQ(r.info().tokenizer_sha256, kSha);
  EXPECT_FALSE(r.info().has_loss_mask);
  std::vector<uint32_t> got(flat.size());
  r.read_tokens(0, flat.size(), got.data());
  EXPECT_EQ(got, flat);
  std::vector<uint32_t> mid(10);
  r.read_tokens(100, 10, mid.data());
  EXPECT_TRUE(std::equal(mid.begin(), mid.end(), flat.begin() + 100));
  auto offs = r.doc_offsets();
  ASSERT_EQ(offs.size(), 51u);
  for (size_t d = 0; d < docs.size(); ++d) EXPECT_EQ(offs[d + 1] - offs[d], docs[d].size());
  EXPECT_THROW(r.read_tokens(flat.size() - 1, 2, got.data()), Error);
  EXPECT_THROW(r.read_loss_mask(0, 1, nullptr), Error);
}

TEST(ShardRoundTrip, Uint32ForLargeVocabAndLossMask) {
  std::string dir = test::temp_dir();
  auto docs = random_docs(100000, 20, 2);
  std::string p = write_shard(dir + "/s.h5", 100000, docs, true);
  EXPECT_EQ(disk_token_bytes(p), 4u);
  ShardReader r(p);
  ASSERT_TRUE(r.info().has_loss_mask);
  std::vector<uint32_t> flat;
  for (const auto& d : docs) flat.insert(flat.end(), d.begin(), d.end());
  std::vector<uint32_t> got(flat.size());
  std::vector<uint8_t> mask(flat.size());
  r.read_tokens(0, flat.size(), got.data());
  r.read_loss_mask(0, flat.size(), mask.data());
  EXPECT_EQ(got, flat);
  for (size_t i = 0; i < flat.size(); ++i) ASSERT_EQ(mask[i], flat[i] & 1) << i;
}

TEST(ShardWriter, UnfinishedShardLeavesNoFile) {
  std::string dir = test::temp_dir();
  {
    ShardWriter w(dir + "/train_0000.h5", ShardMeta{265, 256, kSha, "x"}, false);
    w.add_document({1, 2, 3});
    EXPECT_TRUE(std::filesystem::exists(dir + "/train_0000.h5.tmp"));
    EXPECT_FALSE(std::filesystem::exists(dir + "/train_0000.h5"));
  }  // destroyed without finish(), as when an exception unwinds
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  ShardWriter w(dir + "/x.h5", ShardMeta{265, 256, kSha, "x"}, false);
  std::vector<uint32_t> bad = {265};
  EXPECT_THROW(w.add_document(bad), Error);  // id outside the vocabulary
}

TEST(ShardReader, RefusesOtherTokenizerOrVocab) {
  std::string p = write_shard(test::temp_dir() + "/a.h5", 265, random_docs(265, 3, 3));
  expect_refused(p, "different tokenizer", std::string(64, 'b'));
  expect_refused(p, "vocab_size is 265", "", 512);
  EXPECT_NO_THROW(ShardReader(p, kSha, 265));
}

TEST(ShardReader, RefusesTruncatedFile) {
  std::string dir = test::temp_dir();
  std::string p = write_shard(dir + "/a.h5", 265, random_docs(265, 200, 4));
  auto size = std::filesystem::file_size(p);
  std::string cut = dir + "/cut.h5";
  test::spit(cut, test::slurp(p).substr(0, size / 2));
  expect_refused(cut, "truncated");
  test::spit(cut, "not hdf5 at all");
  expect_refused(cut, "HDF5");
  expect_refused(dir + "/missing.h5", "not found");
}

TEST(ShardReader, RefusesMissingDatasetsOrAttributes) {
  std::string dir = test::temp_dir();
  auto docs = random_docs(265, 5, 5);
  const char* datasets[] = {"tokens", "doc_offsets"};
  for (const char* d : datasets) {
    std::string p = write_shard(dir + "/" + d + ".h5", 265, docs);
    h5_edit(p, d, nullptr);
    expect_refused(p, std::string("/") + d + " is missing");
  }
  const char* attrs[] = {"format", "format_version", "vocab_size", "bos_id", "tokenizer_sha256",
                         "num_tokens", "num_docs", "source", "created_by"};
  for (const char* a : attrs) {
    std::string p = write_shard(dir + "/" + a + ".h5", 265, docs);
    h5_edit(p, nullptr, a);
    expect_refused(p, std::string("'") + a + "'");
  }
}

TEST(ShardList, DirectoryAndGlobSorted) {
  std::string dir = test::temp_dir();
  for (const char* n : {"train_0001.h5", "val_0000.h5", "train_0000.h5"}) test::spit(dir + "/" + n, "");
  auto all = data::list_shards(dir);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0], dir + "/train_0000.h5");
  auto train = data::list_shards(dir + "/train_*.h5");
  EXPECT_EQ(train, (std::vector<std::string>{dir + "/train_0000.h5", dir + "/train_0001.h5"}));
  try {
    data::list_shards(dir + "/nope_*.h5");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nope_*.h5"), std::string::npos);
  }
}

TEST(ShardReader, ConcurrentReadersAndWriter) {
  // A loader thread reads while another thread writes: hdf5_mutex() must make that safe.
  std::string dir = test::temp_dir();
  auto docs = random_docs(265, 100, 6);
  std::string p = write_shard(dir + "/r.h5", 265, docs);
  std::vector<uint32_t> flat;
  for (const auto& d : docs) flat.insert(flat.end(), d.begin(), d.end());
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 3; ++t)
    ts.emplace_back([&, t] {
      ShardReader r(p);
      std::vector<uint32_t> got(64);
      for (int i = 0; i < 300; ++i) {
        uint64_t s = (uint64_t(i) * 37 + t) % (flat.size() - 64);
        r.read_tokens(s, 64, got.data());
        if (!std::equal(got.begin(), got.end(), flat.begin() + s)) ++bad;
      }
    });
  ts.emplace_back([&] {
    for (int i = 0; i < 5; ++i) write_shard(dir + "/w" + std::to_string(i) + ".h5", 265, docs);
  });
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
}
