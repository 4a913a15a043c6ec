// ZeRO-1's parameter side (dist.zero1): which rank owns each parameter, and the broadcast that
// hands every rank the weights their owners just stepped. Whole parameters, not flat slices,
// because Muon orthogonalises whole matrices; GradSync reduces each gradient bucket to its owner.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "dist/comm.h"

namespace kiln::dist {

// owner[i] in [0, world) for parameter i of `numels`: largest first, each to the least-loaded
// rank (ties: the lower rank), so every rank holds about 1/world of the elements (and of the
// optimizer state). Deterministic: every rank computes the same assignment.
std::vector<int> partition_params(const std::vector<int64_t>& numels, int world);

// Elements each rank owns under `owner` (for logs and tests).
std::vector<int64_t> owned_elements(const std::vector<int64_t>& numels, const std::vector<int>& owner, int world);

// Note [One Ownership]: which rank steps which parameter is decided once, here, and every
// consumer asks this object: GradSync (whose rank each bucket is reduced to), the optimizers (the
// state they keep), the gradient norm (whose norm counts), the weight broadcast (from whom), save
// (which tensors this rank writes) and resume (which tensors it reads).
class Ownership {
 public:
  // Nothing sharded (DDP, or one rank): this rank owns every parameter.
  Ownership() = default;
  // ZeRO-1 over `world` ranks: partition_params of the parameters' sizes, seen from `rank`.
  Ownership(const torch::OrderedDict<std::string, torch::Tensor>& named_params, int rank, int world);

  bool sharded() const { return !owner_.empty(); }
  int rank() const { return rank_; }
  // The rank that steps parameter i (this rank when nothing is sharded).
  int owner(size_t i) const { return sharded() ? owner_.at(i) : rank_; }
  bool owns(size_t i) const { return owner(i) == rank_; }
  // By parameter name (named_parameters() keys); a name the model lacks is a kiln::Error.
  bool owns(const std::string& name) const;
  // owner(i) for every parameter, in order; empty when nothing is sharded.
  const std::vector<int>& owners() const { return owner_; }

 private:
  std::vector<int> owner_;
  std::map<std::string, size_t> index_;
  int rank_ = 0;
};

// After each rank stepped the parameters it owns: broadcast every parameter from its owner, in
// parameter order (the same collectives in the same order on every rank). In place, no buffers.
void broadcast_from_owners(const std::vector<torch::Tensor>& params, const std::vector<int>& owner, Comm& comm);
inline void broadcast_from_owners(const std::vector<torch::Tensor>& params, const Ownership& own, Comm& comm) {
  broadcast_from_owners(params, own.owners(), comm);
}

}  // namespace kiln::dist
