// Shared by the cursor-remap tests (pretraining in test_cursor_remap.cpp, chat in
// test_chat_loader.cpp): the rows every rank together reads in each optimizer step, as a sorted
// list, for a run whose world size changes between steps with the cursor remapped.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <vector>

#include "data/cursor_remap.h"
#include "data/loader.h"

namespace kiln::test {

using Row = std::vector<int64_t>;
using MakeLoader = std::function<std::unique_ptr<data::Loader>(int rank, int world)>;

// One row = its inputs then its targets, with right padding (pad_id input, -1 target) trimmed so
// that padded rows compare equal whatever else shared their batch.
inline Row row_of(const torch::Tensor& in, const torch::Tensor& tg, int64_t pad_id) {
  Row r;
  int64_t n = in.size(0);
  while (n > 0 && in[n - 1].item<int64_t>() == pad_id && tg[n - 1].item<int64_t>() == -1) --n;
  for (int64_t j = 0; j < n; ++j) r.push_back(in[j].item<int64_t>());
  for (int64_t j = 0; j < n; ++j) r.push_back(tg[j].item<int64_t>());
  return r;
}

// Steps of a run whose world size for step s is worlds[s]; `rows_per_step` = world x batch x
// accumulation, constant (train.total_batch_size unchanged). When the world changes, the new
// loaders restore the remapped cursor (remap=false: the per-rank count unchanged, the bug the
// remap prevents). Returns per step the sorted rows all ranks read.
inline std::vector<std::vector<Row>> rows_per_step(const MakeLoader& make, const std::vector<int>& worlds,
                                                   int64_t rows_per_step, int64_t batch, int64_t pad_id,
                                                   bool remap = true) {
  std::vector<std::vector<Row>> out;
  std::vector<std::unique_ptr<data::Loader>> ls;
  int world = 0;
  for (int w : worlds) {
    if (w != world) {
      // Rank 0's cursor, as a checkpoint's state_rank_0.json (best-fit: with its global packing state).
      data::Cursor cur = ls.empty() ? data::Cursor{} : ls[0]->cursor();
      if (!ls.empty() && remap) cur.batches = data::remap_batches(cur.batches, world, w);
      ls.clear();
      for (int r = 0; r < w; ++r) {
        ls.push_back(make(r, w));
        ls.back()->restore(cur);
      }
      world = w;
    }
    const int64_t accum = rows_per_step / (world * batch);
    std::vector<Row> rows;
    for (auto& l : ls)
      for (int64_t m = 0; m < accum; ++m) {
        data::Batch b = l->next();
        for (int64_t i = 0; i < b.inputs.size(0); ++i) rows.push_back(row_of(b.inputs[i], b.targets[i], pad_id));
      }
    std::sort(rows.begin(), rows.end());
    out.push_back(std::move(rows));
  }
  return out;
}

// The check both tests run: 2 ranks for 2 steps, 1 rank for 2, 4 ranks for 2 read per step the
// same rows as 2 ranks throughout; without the remap they would not.
inline void expect_remap_keeps_data(const MakeLoader& make, int64_t batch, int64_t pad_id) {
  const int64_t rows = 4 * batch;  // 2 ranks x 2 micro-steps = 1 x 4 = 4 x 1
  const auto ref = rows_per_step(make, {2, 2, 2, 2, 2, 2}, rows, batch, pad_id);
  const auto got = rows_per_step(make, {2, 2, 1, 1, 4, 4}, rows, batch, pad_id);
  ASSERT_EQ(ref.size(), got.size());
  for (size_t s = 0; s < ref.size(); ++s) {
    ASSERT_EQ(ref[s].size(), static_cast<size_t>(rows));
    EXPECT_EQ(ref[s], got[s]) << "step " << s << " read other rows after the world-size change";
  }
  const auto wrong = rows_per_step(make, {2, 2, 1, 1, 4, 4}, rows, batch, pad_id, /*remap=*/false);
  EXPECT_NE(ref[2], wrong[2]) << "without the remap the data would differ: the check above could not fail";
}

}  // namespace kiln::test
