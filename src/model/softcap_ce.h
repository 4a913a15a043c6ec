// Softcapped cross-entropy as one autograd node: loss = CE(s*tanh(z[:, :V]/s), target), computed
// in row chunks in fp32 from logits of any dtype. Eager ATen would keep two fp32 (N, V) tensors
// for backward (tanh and log_softmax outputs, 34 GB at d20 batch 32); this keeps only the logits.
#pragma once
#include <torch/torch.h>

namespace kiln::model {

enum class LossReduction { kMean, kNone };

// logits (N, Vp) with Vp >= vocab; targets (N) int64, -1 = ignored (loss 0, no gradient).
// kMean: fp32 scalar, the mean over non-ignored rows. kNone: fp32 (N) per-row losses.
torch::Tensor softcap_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets, int64_t vocab,
                                    double softcap, LossReduction reduction);

}  // namespace kiln::model
