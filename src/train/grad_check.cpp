// Gradient norm / clipping and the non-finite message; see grad_check.h.
#include "train/grad_check.h"

#include <cmath>

#include "train/metrics.h"  // f9

namespace kiln::train {

double grad_norm_and_clip(const std::vector<torch::Tensor>& params, double max_norm) {
  if (max_norm > 0) return torch::nn::utils::clip_grad_norm_(params, max_norm);
  // Same reduction as clip_grad_norm_ (norm of the per-tensor norms), without the scaling.
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  for (const auto& p : params)
    if (p.grad().defined()) norms.push_back(p.grad().norm(2));
  if (norms.empty()) return 0.0;
  return (norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2)).item<double>();
}

std::string nonfinite_message(int64_t step, double loss, double grad_norm) {
  if (!std::isfinite(loss)) return "step " + std::to_string(step) + ": the training loss is " + f9(loss);
  return "step " + std::to_string(step) + ": the gradient norm is " + f9(grad_norm) + " (loss " + f9(loss) +
         "): a non-finite gradient";
}

}  // namespace kiln::train
