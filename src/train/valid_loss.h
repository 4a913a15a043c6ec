// The step's loss over valid targets (issue 9): sum of per-token losses over every valid target
// of the step (all micro-steps, all ranks) divided by their number, so N ranks x B rows equal one
// rank x N*B rows, and a micro-batch without a valid target adds zero loss and zero gradient.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "data/loader.h"
#include "model/lm.h"

namespace kiln::train {

struct StepTargets {
  std::vector<int64_t> counts;  // valid targets per micro-batch on this rank
  double total = 0;             // valid targets of the whole step, all ranks
  int world = 1;
  bool weighted = false;        // the batches carry per-token weights (data::Batch::weights)
  // Backward weight of micro-batch m's loss. GradSync averages gradients over ranks (divides by
  // world), hence the factor world: sum_ranks sum_m count_m * mean_m / total after averaging.
  // Weighted batches are normalised by their source: their sums only undo the averaging.
  double weight(size_t m) const {
    if (weighted) return world;
    return total > 0 ? double(counts[m]) * world / total : 0.0;
  }
  // What micro-batch m's loss adds to the step's summed loss, and the step's loss from that sum
  // over all ranks: the mean over valid targets, or the plain sum for weighted batches.
  double share(size_t m) const { return weighted ? 1.0 : double(counts[m]); }
  double step_loss(double summed) const { return weighted ? summed : total > 0 ? summed / total : 0.0; }
};

// Counts the valid targets (>= 0) of this rank's micro-batches and sums them over all ranks.
StepTargets count_step_targets(const std::vector<data::Batch>& batches, int world);

// Micro-batch m's mean loss over its valid targets; with none, a zero that still carries the
// graph (per-token losses are 0 there), so backward runs (GradSync's hooks) and adds no gradient.
// With b.weights: sum(weights x per-token loss) (targets of -1 have loss 0).
torch::Tensor micro_loss(model::LM& model, const data::Batch& b, int64_t valid);

}  // namespace kiln::train
