// BpbAccumulator; see bpb.h. Sums in float64 on the device so a long validation does not lose
// precision and costs one synchronisation at the end.
#include "model/bpb.h"

#include <cmath>
#include <limits>

namespace kiln::model {

double BpbSums::bpb() const {
  return bytes > 0 ? nats / (std::log(2.0) * bytes) : std::numeric_limits<double>::infinity();
}

double BpbSums::loss() const { return tokens > 0 ? all_nats / tokens : 0.0; }

BpbAccumulator::BpbAccumulator(const std::vector<int32_t>& token_bytes, const torch::Device& device) {
  std::vector<double> tb(token_bytes.begin(), token_bytes.end());
  token_bytes_ = torch::tensor(tb, torch::kFloat64).to(device);
  nats_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
  bytes_ = torch::zeros_like(nats_);
  all_nats_ = torch::zeros_like(nats_);
  tokens_ = torch::zeros_like(nats_);
}

void BpbAccumulator::add(LM& model, const torch::Tensor& inputs, const torch::Tensor& targets) {
  torch::NoGradGuard no_grad;
  auto loss = model.forward_loss_per_token(inputs, targets).to(torch::kFloat64);
  auto valid = targets >= 0;
  auto nb = token_bytes_.index({targets.clamp_min(0)}) * valid;
  nats_ += (loss * (nb > 0)).sum();
  bytes_ += nb.sum();
  all_nats_ += (loss * valid).sum();
  tokens_ += valid.sum();
}

BpbSums BpbAccumulator::sums() const {
  auto all = torch::stack({nats_, bytes_, all_nats_, tokens_}).cpu();
  auto a = all.accessor<double, 1>();
  return {a[0], a[1], a[2], a[3]};
}

}  // namespace kiln::model
