// Gradient norm / clipping and the non-finite message; see grad_check.h.
#include "train/grad_check.h"

#include <cmath>

#include "dist/comm.h"      // Comm::all_reduce
#include "train/metrics.h"  // f9

namespace kiln::train {

double grad_norm_and_clip(const std::vector<torch::Tensor>& params, double max_norm, const dist::Ownership& ownership,
                          dist::Comm* comm) {
  const bool shard = ownership.sharded();
  TORCH_CHECK(!shard || comm, "grad_norm_and_clip: a sharded ownership needs the communicator");
  if (max_norm > 0 && !shard) return torch::nn::utils::clip_grad_norm_(params, max_norm);
  // Same reduction and scaling as clip_grad_norm_ (norm of the per-tensor norms).
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  std::vector<torch::Tensor> mine;  // the grads this rank clips
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& g = params[i].grad();
    if (!g.defined()) continue;
    const bool own = ownership.owns(i);
    // A non-owner's grad is only its local sum: contribute 0, the owner adds the real norm.
    norms.push_back(own ? g.norm(2) : torch::zeros({}, g.options()));
    if (own) mine.push_back(g);
  }
  if (shard) {
    // Every rank must take part in the all-reduce even with no grads (it never has none here).
    torch::Tensor all = torch::stack(norms);
    comm->all_reduce(all, kiln::dist::ReduceOp::Sum);  // x + 0 + ... is exact
    norms = all.unbind();
  }
  if (norms.empty()) return 0.0;
  const torch::Tensor total = norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2);
  if (max_norm > 0) {
    const torch::Tensor coef = torch::clamp(max_norm / (total + 1e-6), std::nullopt, 1.0);
    for (auto& g : mine) g.mul_(coef);
  }
  return total.item<double>();
}

std::string nonfinite_message(int64_t step, double loss, double grad_norm) {
  if (!std::isfinite(loss)) return "step " + std::to_string(step) + ": the training loss is " + f9(loss);
  return "step " + std::to_string(step) + ": the gradient norm is " + f9(grad_norm) + " (loss " + f9(loss) +
         "): a non-finite gradient";
}

}  // namespace kiln::train
