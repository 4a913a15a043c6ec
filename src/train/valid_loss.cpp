// See valid_loss.h. The mean path is the model's fused loss (pretraining's numbers are unchanged:
// with every target valid the weight is 1/accum); the empty path sums per-token zeros instead of
// dividing 0 by 0, which is where nanochat #590/#618 got NaN.
#include "train/valid_loss.h"

#include "dist/dist.h"

namespace kiln::train {

StepTargets count_step_targets(const std::vector<data::Batch>& batches, int world) {
  StepTargets t;
  t.world = world;
  t.weighted = !batches.empty() && batches.front().weights.defined();
  std::vector<torch::Tensor> each;
  for (const auto& b : batches) each.push_back((b.targets >= 0).sum());
  const torch::Tensor counts = torch::stack(each).to(torch::kCPU);  // one device sync for all micro-batches
  double local = 0;
  for (int64_t i = 0; i < counts.numel(); ++i) {
    t.counts.push_back(counts[i].item<int64_t>());
    local += double(t.counts.back());
  }
  t.total = world > 1 ? dist::all_reduce_sum(local) : local;
  return t;
}

torch::Tensor micro_loss(model::LM& model, const data::Batch& b, int64_t valid) {
  if (b.weights.defined()) return (model.forward_loss_per_token(b.inputs, b.targets) * b.weights).sum();
  if (valid > 0) return model.forward(b.inputs, b.targets);
  return model.forward_loss_per_token(b.inputs, b.targets).sum();
}

}  // namespace kiln::train
