// ZeRO-1's parameter side (dist.zero1): which rank owns each parameter, and the broadcast that
// hands every rank the weights their owners just stepped. Whole parameters, not flat slices,
// because Muon orthogonalises whole matrices; GradSync reduces each gradient bucket to its owner.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "dist/comm.h"

namespace kiln::dist {

// owner[i] in [0, world) for parameter i of `numels`: largest first, each to the least-loaded
// rank (ties: the lower rank), so every rank holds about 1/world of the elements (and of the
// optimizer state). Deterministic: every rank computes the same assignment.
std::vector<int> partition_params(const std::vector<int64_t>& numels, int world);

// Elements each rank owns under `owner` (for logs and tests).
std::vector<int64_t> owned_elements(const std::vector<int64_t>& numels, const std::vector<int>& owner, int world);

// After each rank stepped the parameters it owns: broadcast every parameter from its owner, in
// parameter order (the same collectives in the same order on every rank). In place, no buffers.
void broadcast_from_owners(const std::vector<torch::Tensor>& params, const std::vector<int>& owner, Comm& comm);

}  // namespace kiln::dist
