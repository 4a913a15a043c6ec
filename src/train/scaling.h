// nanochat's scaling rules (scripts/base_train.py at 92d63d4), resolved once at the start of a run
// and written into the config, so that the checkpoints carry the numbers and a --resume reads
// them instead of deriving them again: with D = train.target_param_data_ratio x the model's
// num_scaling_params and D_ref the same for nanochat's reference d12 of the same architecture,
//   train.total_batch_size -1:  B = 2^round(log2(B_ref (D / D_ref)^0.383)), B_ref = 2^19 tokens;
//   optim.batch_lr_scale -1:    every LR times sqrt(B / B_ref);
//   optim.weight_decay_scale -1: weight decay times sqrt(B / B_ref) x D_ref / D.
// A key given as a number is kept (every derived value can be overridden).
#pragma once
#include <cstdint>

#include "core/config.h"

namespace kiln::train {

constexpr int64_t kBatchRef = int64_t(1) << 19;  // nanochat's optimal batch at d12 (tokens)
constexpr int64_t kDepthRef = 12;                 // nanochat's reference model

struct Scaling {
  double target_tokens = 0, ref_tokens = 0;  // D and D_ref
  int64_t total_batch_size = 0;              // B after resolution
  double batch_lr_scale = 1, weight_decay_scale = 1;
};

// The rules' numbers from the two parameter counts and the config (pure; no -1 left in the result).
Scaling scaling_rules(const Config& cfg, int64_t scaling_params, int64_t ref_scaling_params);

// Whether cfg asks for any rule (a -1 among the three keys).
bool needs_scaling(const Config& cfg);

// num_scaling_params of nanochat's reference d12 in cfg's architecture (model.depth 12, width and
// heads by the depth rule), counted on the meta device (no memory).
int64_t reference_scaling_params(const Config& cfg, int64_t vocab_size);

// Resolves the -1 keys of cfg with scaling_rules, logs what it derived, and checks the batch
// against the world (kiln::Error naming the key when B does not split into micro-steps).
void resolve_scaling(Config& cfg, int64_t scaling_params, int64_t ref_scaling_params, int world);

}  // namespace kiln::train
