// remap_batches; see cursor_remap.h. Kept as its own function so a unit test can check the
// arithmetic against the loaders' real streams (tests/unit/test_cursor_remap.cpp).
#include "data/cursor_remap.h"

#include <string>

#include "core/error.h"

namespace kiln::data {

int64_t remap_batches(int64_t batches, int saved_world, int world) {
  if (saved_world < 1 || world < 1 || batches < 0)
    throw Error("[data] cannot remap a loader cursor of " + std::to_string(batches) + " batches from " +
                    std::to_string(saved_world) + " to " + std::to_string(world) + " ranks",
                "the checkpoint's state_rank_*.json or meta.json world_size is damaged");
  const int64_t global = batches * saved_world;  // windows (rows) every rank together consumed
  if (global % world != 0)
    throw Error("[data] the checkpoint's loaders stand at global window " + std::to_string(global) + " (" +
                    std::to_string(batches) + " batches x " + std::to_string(saved_world) +
                    " ranks), which " + std::to_string(world) + " ranks cannot split evenly",
                "resume on a number of ranks that divides " + std::to_string(global) +
                    " (train.total_batch_size must stay divisible by ranks x device_batch_size x seq_len)");
  return global / world;
}

}  // namespace kiln::data
