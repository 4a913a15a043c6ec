// What the Trainer needs from any loader (pretraining's packed stream, later the chat loaders):
// the next (inputs, targets) batch and a Cursor that restores the exact stream on resume.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>

namespace kiln::data {

// Where a loader stands: `batches` is the number of batches this rank has consumed (enough to
// restore the stateless layouts); epoch and position are derived and kept for people reading
// checkpoints. `packing` is the state of a stateful layout (best-fit: data/bestfit.h), null else.
struct Cursor {
  int64_t batches = 0;
  int64_t epoch = 0;
  int64_t position = 0;
  nlohmann::json packing;

  // As a checkpoint's state_rank_*.json stores it: {"batches", "epoch", "position"[, "packing"]}.
  nlohmann::json to_json() const {
    nlohmann::json j = {{"batches", batches}, {"epoch", epoch}, {"position", position}};
    if (!packing.is_null()) j["packing"] = packing;
    return j;
  }
  // Throws kiln::Error naming `where` and the key when one is missing or not an integer.
  static Cursor from_json(const nlohmann::json& j, const std::string& where);
};

struct Batch {
  torch::Tensor inputs;   // (B, T) int64
  torch::Tensor targets;  // (B, T) int64, -1 = not trained on
  // Optional (B, T) float: each target's loss weight, already normalised over the whole step by
  // the source (./rl: advantage / (valid tokens x passes x questions)); the micro-batch's loss is
  // then sum(weight x per-token loss) instead of a mean over valid targets.
  torch::Tensor weights;
  // Best-fit packing: document tokens dropped by crops in this micro-step's rows of ALL ranks (the
  // same figure on every rank); -1 for layouts that never crop.
  int64_t cropped = -1;
};

class Loader {
 public:
  virtual ~Loader() = default;
  virtual Batch next() = 0;
  virtual Cursor cursor() const = 0;
  virtual void restore(const Cursor& c) = 0;
};

}  // namespace kiln::data
