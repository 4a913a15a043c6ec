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
  // Backward weight of micro-batch m's mean loss. GradSync averages gradients over ranks (divides
  // by world), hence the factor world: sum_ranks sum_m count_m * mean_m / total after averaging.
  double weight(size_t m) const { return total > 0 ? double(counts[m]) * world / total : 0.0; }
};

// Counts the valid targets (>= 0) of this rank's micro-batches and sums them over all ranks.
StepTargets count_step_targets(const std::vector<data::Batch>& batches, int world);

// Micro-batch m's mean loss over its valid targets; with none, a zero that still carries the
// graph (per-token losses are 0 there), so backward runs (GradSync's hooks) and adds no gradient.
torch::Tensor micro_loss(model::LM& model, const data::Batch& b, int64_t valid);

}  // namespace kiln::train
