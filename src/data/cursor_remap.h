// Resuming a run on another number of ranks: the loaders hand rank r of N the global windows
// (or rows) r, r+N, ..., so a cursor of `batches` per rank stands at global window batches x N.
// On N' ranks the same global position is batches x N / N' per rank; the step's windows are the
// same set as long as the tokens per step (train.total_batch_size) are unchanged.
#pragma once
#include <cstdint>

namespace kiln::data {

// The per-rank batch count on `world` ranks that continues a cursor of `batches` saved on
// `saved_world` ranks. Throws kiln::Error when batches x saved_world is not a multiple of world
// (the checkpoint is not at a step boundary that the new world can split evenly).
int64_t remap_batches(int64_t batches, int saved_world, int world);

}  // namespace kiln::data
