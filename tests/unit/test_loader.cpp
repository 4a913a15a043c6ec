// PretrainLoader over an in-memory stream: N ranks with batch B read exactly the rows of one
// process with batch N*B, in order; a restored Cursor replays the exact batches; the stream
// wraps into the next epoch. CPU only (the CUDA pinned-memory path is covered by the GPU tests).
#include <gtest/gtest.h>

#include <numeric>

#include "core/error.h"
#include "data/pretrain_loader.h"

using kiln::data::Batch;
using kiln::data::PretrainLoader;

namespace {
std::shared_ptr<kiln::data::TokenStream> counting_stream(int64_t n) {
  std::vector<int64_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), 0);
  return kiln::data::memory_stream(std::move(t));
}
}  // namespace

TEST(Loader, InputsAndTargetsAreShiftedWindows) {
  PretrainLoader l(counting_stream(1000), 2, 8, 0, 1, torch::kCPU);
  Batch b = l.next();
  ASSERT_EQ(b.inputs.sizes(), (std::vector<int64_t>{2, 8}));
  EXPECT_TRUE(torch::equal(b.inputs.flatten(), torch::arange(0, 16)));
  EXPECT_TRUE(torch::equal(b.targets.flatten(), torch::arange(1, 17)));
  Batch c = l.next();
  EXPECT_TRUE(torch::equal(c.inputs.flatten(), torch::arange(16, 32)));
}

TEST(Loader, RanksTogetherReadWhatOneBigBatchReads) {
  const int64_t B = 3, T = 5, N = 2;
  auto s = counting_stream(997);  // not a multiple of anything: windows wrap mid-way
  PretrainLoader big(s, N * B, T, 0, 1, torch::kCPU);
  PretrainLoader r0(s, B, T, 0, N, torch::kCPU), r1(s, B, T, 1, N, torch::kCPU);
  for (int step = 0; step < 100; ++step) {
    Batch b = big.next(), a0 = r0.next(), a1 = r1.next();
    EXPECT_TRUE(torch::equal(b.inputs, torch::cat({a0.inputs, a1.inputs}))) << "step " << step;
    EXPECT_TRUE(torch::equal(b.targets, torch::cat({a0.targets, a1.targets}))) << "step " << step;
  }
}

TEST(Loader, CursorRestoresTheExactStream) {
  auto s = counting_stream(301);
  PretrainLoader a(s, 4, 7, 1, 2, torch::kCPU);
  for (int i = 0; i < 13; ++i) a.next();
  auto cur = a.cursor();
  EXPECT_EQ(cur.batches, 13);
  std::vector<Batch> expect;
  for (int i = 0; i < 9; ++i) expect.push_back(a.next());
  PretrainLoader b(s, 4, 7, 1, 2, torch::kCPU);
  b.next();  // whatever it had prefetched is thrown away by restore
  b.restore(cur);
  for (int i = 0; i < 9; ++i) {
    Batch got = b.next();
    EXPECT_TRUE(torch::equal(got.inputs, expect[i].inputs)) << i;
    EXPECT_TRUE(torch::equal(got.targets, expect[i].targets)) << i;
  }
}

TEST(Loader, WrapsIntoTheNextEpoch) {
  PretrainLoader l(counting_stream(20), 1, 8, 0, 1, torch::kCPU);
  l.next();
  l.next();  // tokens 8..16
  auto c = l.cursor();
  EXPECT_EQ(c.position, 16);
  Batch b = l.next();  // window at 16 wraps: 16..19 then 0..4
  std::vector<int64_t> want = {16, 17, 18, 19, 0, 1, 2, 3};
  EXPECT_TRUE(torch::equal(b.inputs.flatten(), torch::tensor(want)));
  EXPECT_EQ(l.cursor().epoch, 1);
}

TEST(Loader, TooShortStreamIsAnError) {
  EXPECT_THROW(PretrainLoader(counting_stream(10), 2, 8, 0, 1, torch::kCPU), kiln::Error);
}
