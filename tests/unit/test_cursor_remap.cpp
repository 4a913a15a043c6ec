// The loader-cursor remap of a resume on another world size (issue 14), against the loaders'
// own streams: a run on 2 ranks, continued on 1 and then 4 with remap_batches, reads in every
// step exactly the rows the 2-rank run reads (PretrainLoader here, ChatLoader in
// test_chat_loader.cpp); the arithmetic and its refusals. CPU only.
#include <gtest/gtest.h>

#include <numeric>

#include "core/error.h"
#include "cursor_remap_util.h"
#include "data/pretrain_loader.h"

using kiln::data::remap_batches;

TEST(CursorRemap, Arithmetic) {
  EXPECT_EQ(remap_batches(20, 2, 1), 40);
  EXPECT_EQ(remap_batches(40, 1, 2), 20);
  EXPECT_EQ(remap_batches(12, 4, 8), 6);
  EXPECT_EQ(remap_batches(0, 3, 5), 0);
  EXPECT_EQ(remap_batches(7, 2, 2), 7);
  EXPECT_THROW(remap_batches(3, 1, 2), kiln::Error);  // 3 windows cannot split over 2 ranks
  EXPECT_THROW(remap_batches(5, 0, 2), kiln::Error);
  EXPECT_THROW(remap_batches(-1, 1, 1), kiln::Error);
}

TEST(CursorRemap, PretrainLoaderReadsTheSameWindowsPerStep) {
  const int64_t B = 2, T = 5;
  std::vector<int64_t> t(997);  // wraps mid-window within the test's steps
  std::iota(t.begin(), t.end(), 0);
  auto stream = kiln::data::memory_stream(t);
  kiln::test::expect_remap_keeps_data(
      [&](int rank, int world) {
        return std::make_unique<kiln::data::PretrainLoader>(stream, B, T, rank, world, torch::kCPU);
      },
      B, /*pad_id=*/-999);
}
