// The gradient norm of every step (clipped to train.grad_clip when that is > 0) and what the
// Trainer does when it is not finite: a step with NaN/Inf gradients must never reach the weights.
// Kept apart from trainer.cpp so the loop only reads `if (!check.ok) ...`.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "dist/zero1.h"  // Ownership

namespace kiln::train {

// Total L2 norm of all gradients (as clip_grad_norm_ computes it), clipping them to max_norm
// when max_norm > 0. Always computed: with clipping off it is still the non-finite detector.
// ZeRO-1 (a sharded `ownership`, whose rank holds the reduced gradient only of the parameters it
// owns): each per-parameter norm comes from its owner (all-reduced over `comm`, so every rank
// gets the same global norm, bit for bit what plain DDP computes) and only owned grads are clipped.
double grad_norm_and_clip(const std::vector<torch::Tensor>& params, double max_norm,
                          const dist::Ownership& ownership = dist::Ownership(), dist::Comm* comm = nullptr);

// The message for a step whose loss or gradient norm is not finite (step is 1-based, as logged).
std::string nonfinite_message(int64_t step, double loss, double grad_norm);

}  // namespace kiln::train
