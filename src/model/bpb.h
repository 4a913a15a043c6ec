// Bits per byte (nanochat's evaluate_bpb): per-token losses summed over the targets that stand for
// real bytes (token_bytes > 0; specials and ignored targets excluded), divided by ln 2 x those
// bytes. One accumulator for the Trainer's validation and ./eval --task bpb, so both report the
// same number for the same tokens; callers sum BpbSums over ranks (model/ knows no MPI).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "model/lm.h"

namespace kiln::model {

struct BpbSums {
  double nats = 0;      // loss summed over targets that have bytes
  double bytes = 0;     // their UTF-8 bytes
  double all_nats = 0;  // loss summed over every valid target (for the mean loss per token)
  double tokens = 0;    // number of valid targets
  double bpb() const;   // nats / (ln 2 * bytes); inf when there were no bytes
  double loss() const;  // all_nats / tokens
};

class BpbAccumulator {
 public:
  BpbAccumulator(const std::vector<int32_t>& token_bytes, const torch::Device& device);
  // One forward of (B,T) inputs against (B,T) targets (-1 = ignore); sums stay on the device.
  void add(LM& model, const torch::Tensor& inputs, const torch::Tensor& targets);
  // This process's sums (one device sync).
  BpbSums sums() const;

 private:
  torch::Tensor token_bytes_, nats_, bytes_, all_nats_, tokens_;
};

}  // namespace kiln::model
