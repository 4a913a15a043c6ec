// data.layout bestfit (issue 22): the PretrainLoader's best-fit rows against
// tests/reference/bestfit_ref.py (an independent Python best-fit over the same shards, read with
// h5py) on real documents (the paragraphs of a Project Gutenberg book, tokenized by ./prepare's
// engine); every row starts at <|bos|>; a restored cursor (with its buffer) replays the exact rows;
// resharding 2 -> 1 -> 4 ranks reads the same rows per step; bad data gives clear errors. CPU.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <numeric>

#include "core/error.h"
#include "cursor_remap_util.h"
#include "data/bestfit.h"
#include "data/pretrain_loader.h"
#include "data/shard.h"
#include "data/shard_prepare.h"
#include "tok_test_util.h"

using kiln::data::Batch;
using kiln::data::Packing;
using kiln::data::PretrainLoader;
namespace test = kiln::test;

namespace {

// Shards of the first `paras` paragraphs (blank-line separated) of Pride and Prejudice, one JSONL
// record each, byte-level tokenizer (<|bos|> = 256). Made once per test binary run.
struct Book {
  std::string dir;
  std::vector<std::string> shards;
  int64_t bos = 0;
};
const Book& book() {
  static Book b = [] {
    Book out;
    if (test::data_dir().empty()) return out;
    const std::string dir = out.dir = test::temp_dir();
    const std::string text = test::slurp(test::data_dir() + "/prose/pg1342.txt");
    std::ofstream jl(dir + "/paras.jsonl");
    size_t pos = text.find("\n\n", text.size() / 10), n = 0;  // past the Gutenberg header
    while (n < 700 && pos != std::string::npos) {
      const size_t end = text.find("\r\n\r\n", pos + 4) == std::string::npos ? text.find("\n\n", pos + 2)
                                                                             : text.find("\r\n\r\n", pos + 4);
      if (end == std::string::npos) break;
      std::string p = text.substr(pos, end - pos);
      while (!p.empty() && (p.front() == '\n' || p.front() == '\r')) p.erase(p.begin());
      if (!p.empty()) jl << nlohmann::json{{"text", p}}.dump() << "\n", ++n;
      pos = end;
    }
    jl.close();
    auto bytes = kiln::tok::Tokenizer::from_merges({});
    bytes.save(dir + "/tok.json");
    kiln::data::PrepareOptions o{dir + "/tok.json", dir + "/out", {dir + "/paras.jsonl"}};
    o.val_fraction = 0.01;
    o.shard_tokens = 100000;  // several shards: documents cross no shard, rows do
    o.progress = false;
    out.shards = kiln::data::prepare_shards(o).train;
    out.bos = bytes.bos_id();
    return out;
  }();
  return b;
}

std::shared_ptr<kiln::data::TokenStream> book_stream() {
  auto bytes = kiln::tok::Tokenizer::from_merges({});
  return kiln::data::shard_stream(book().shards, bytes.sha256(), bytes.vocab_size());
}

// Row b of a batch: its T inputs and the last target (the row's T+1 tokens).
std::vector<int64_t> row_tokens(const Batch& x, int64_t b) {
  auto in = x.inputs[b], tg = x.targets[b];
  std::vector<int64_t> r(in.data_ptr<int64_t>(), in.data_ptr<int64_t>() + in.size(0));
  r.push_back(tg[tg.size(0) - 1].item<int64_t>());
  EXPECT_TRUE(torch::equal(in.narrow(0, 1, in.size(0) - 1), tg.narrow(0, 0, tg.size(0) - 1)));
  return r;
}

}  // namespace

TEST(BestFit, RowsEqualThePythonReferenceOnRealDocuments) {
  if (book().shards.empty()) GTEST_SKIP() << "no shared data";
  ASSERT_GE(book().shards.size(), 2u);
  const int64_t B = 4, T = 256, K = 60;  // 2 ranks x 4 rows x 60 batches = 480 rows
  PretrainLoader r0(book_stream(), B, T, 0, 2, torch::kCPU, Packing::BestFit);
  PretrainLoader r1(book_stream(), B, T, 1, 2, torch::kCPU, Packing::BestFit);
  std::vector<std::vector<int64_t>> rows;
  std::vector<int64_t> cropped;  // per global batch group (both ranks' rows)
  for (int64_t k = 0; k < K; ++k) {
    Batch a = r0.next(), b = r1.next();
    EXPECT_EQ(a.cropped, b.cropped) << "the ranks disagree on the step's crops at batch " << k;
    cropped.push_back(a.cropped);
    for (int64_t i = 0; i < B; ++i) rows.push_back(row_tokens(a, i));
    for (int64_t i = 0; i < B; ++i) rows.push_back(row_tokens(b, i));
  }
  const std::string out = book().dir + "/ref.json";
  std::string cmd = std::string(KILN_PYTHON) + " " + test::source_dir() + "/tests/reference/bestfit_ref.py " +
                    std::to_string(T + 1) + " " + std::to_string(rows.size()) + " " + out;
  for (const auto& s : book().shards) cmd += " " + s;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto ref = nlohmann::json::parse(test::slurp(out));
  ASSERT_EQ(ref["rows"].size(), rows.size());
  int64_t packed_rows = 0, crops = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i], ref["rows"][i].get<std::vector<int64_t>>()) << "row " << i;
    EXPECT_EQ(rows[i][0], book().bos) << "row " << i << " does not start at a document";
    packed_rows += std::count(rows[i].begin(), rows[i].end(), book().bos) > 1;
  }
  for (int64_t k = 0; k < K; ++k) {
    int64_t want = 0;
    for (int64_t i = 0; i < 2 * B; ++i) want += ref["cropped"][k * 2 * B + i].get<int64_t>();
    EXPECT_EQ(cropped[k], want) << "batch " << k;
    crops += want;
  }
  // Not vacuous: rows hold several documents, and crops happen.
  EXPECT_GT(packed_rows, int64_t(rows.size()) / 4);
  EXPECT_GT(crops, 0);
  std::cerr << rows.size() << " rows equal the reference; " << packed_rows << " hold 2+ documents; cropped "
            << crops << " of " << crops + int64_t(rows.size()) * (T + 1) << " document tokens\n";
}

TEST(BestFit, CursorWithItsBufferRestoresTheExactRows) {
  if (book().shards.empty()) GTEST_SKIP() << "no shared data";
  const int64_t B = 3, T = 128;
  PretrainLoader a(book_stream(), B, T, 1, 2, torch::kCPU, Packing::BestFit);
  for (int i = 0; i < 17; ++i) a.next();
  const auto cur = kiln::data::Cursor::from_json(nlohmann::json::parse(a.cursor().to_json().dump()), "test");
  ASSERT_TRUE(cur.packing.contains("buffer"));
  EXPECT_EQ(cur.packing["rows"].get<int64_t>(), 17 * 2 * B);
  std::vector<Batch> expect;
  for (int i = 0; i < 9; ++i) expect.push_back(a.next());
  PretrainLoader b(book_stream(), B, T, 1, 2, torch::kCPU, Packing::BestFit);
  b.next();  // whatever it had packed ahead is thrown away by restore
  b.restore(cur);
  for (int i = 0; i < 9; ++i) {
    Batch got = b.next();
    EXPECT_TRUE(torch::equal(got.inputs, expect[i].inputs)) << i;
    EXPECT_TRUE(torch::equal(got.targets, expect[i].targets)) << i;
    EXPECT_EQ(got.cropped, expect[i].cropped) << i;
  }
  // A cursor without the packing state (a stream-layout checkpoint) past the start is refused.
  EXPECT_NE(test::error_of([&] { b.restore({17, 0, 0}); }).find("data.layout packed"), std::string::npos);
}

TEST(BestFit, ReshardingKeepsEveryStepsRows) {
  if (book().shards.empty()) GTEST_SKIP() << "no shared data";
  const int64_t B = 2, T = 64;
  auto make = [&](int rank, int world) {
    return std::make_unique<PretrainLoader>(book_stream(), B, T, rank, world, torch::kCPU, Packing::BestFit);
  };
  const int64_t rows = 4 * B;
  const auto ref = test::rows_per_step(make, {2, 2, 2, 2, 2, 2}, rows, B, -999);
  const auto got = test::rows_per_step(make, {2, 2, 1, 1, 4, 4}, rows, B, -999);
  ASSERT_EQ(ref.size(), got.size());
  for (size_t s = 0; s < ref.size(); ++s) EXPECT_EQ(ref[s], got[s]) << "step " << s;
  // A per-rank count that does not match the global state (no remap) is refused, not misread.
  EXPECT_THROW(test::rows_per_step(make, {2, 2, 1, 1}, rows, B, -999, /*remap=*/false), kiln::Error);
}

namespace {
// Documents of the given lengths, each <|bos|> (=99) then 1, 2, 3, ...; bos = -2 writes no <|bos|>.
std::shared_ptr<kiln::data::TokenStream> docs(const std::vector<int64_t>& lens, int64_t bos = 99) {
  std::vector<int64_t> t, bounds;
  for (int64_t l : lens) {
    bounds.push_back(static_cast<int64_t>(t.size()));
    for (int64_t i = 0; i < l; ++i) t.push_back(i == 0 && bos >= 0 ? bos : i + 1);
  }
  bounds.push_back(static_cast<int64_t>(t.size()));
  return kiln::data::memory_stream(std::move(t), std::move(bounds), bos >= 0 ? bos : 99);
}
}  // namespace

TEST(BestFit, PacksTheLargestFitAndCropsOnlyWhenNothingFits) {
  // Row of 10: the buffer holds 3, 6, 5, 4, 12 (repeated): the largest fit 6 (not the first fit,
  // 3), then 4 (5 no longer fits), then the row is full: 6+4 = 10, no crop.
  kiln::data::BestFitPacker p({0, 3, 9, 14, 18, 30}, 10);
  std::vector<kiln::data::RowPiece> row;
  EXPECT_EQ(p.pack_row(row), 0);
  ASSERT_EQ(row.size(), 2u);
  EXPECT_EQ(row[0].start, 3);
  EXPECT_EQ(row[0].len, 6);
  EXPECT_EQ(row[1].start, 14);
  EXPECT_EQ(row[1].len, 4);
  // A document longer than a row stays buffered while shorter ones fit: rows of 10 from
  // documents of 40 and 3 take 3+3+3, then the room of 1 crops the next 3 (2 tokens dropped).
  PretrainLoader l(docs({40, 3}), 1, 9, 0, 1, torch::kCPU, Packing::BestFit);
  Batch b = l.next();
  EXPECT_TRUE(torch::equal(b.inputs[0], torch::tensor(std::vector<int64_t>{99, 2, 3, 99, 2, 3, 99, 2, 3})));
  EXPECT_EQ(b.targets[0][8].item<int64_t>(), 99);
  EXPECT_EQ(b.cropped, 2);
}

TEST(BestFit, BadDataGivesClearErrors) {
  // Documents that do not start with <|bos|>.
  PretrainLoader nobos(docs({5, 7, 9}, -2), 2, 8, 0, 1, torch::kCPU, Packing::BestFit);
  const std::string e = test::error_of([&] { nobos.next(); });
  EXPECT_NE(e.find("not <|bos|>"), std::string::npos) << e;
  // Every document longer than a row: best-fit would repeat their first T+1 tokens.
  const std::string e2 =
      test::error_of([&] { PretrainLoader(docs({50, 60}), 1, 8, 0, 1, torch::kCPU, Packing::BestFit); });
  EXPECT_NE(e2.find("longer than a row"), std::string::npos) << e2;
  // No documents at all (empty shards).
  const std::string e3 = test::error_of(
      [&] { PretrainLoader(kiln::data::memory_stream({}, {0}, 99), 1, 8, 0, 1, torch::kCPU, Packing::BestFit); });
  EXPECT_NE(e3.find("no documents"), std::string::npos) << e3;
}
