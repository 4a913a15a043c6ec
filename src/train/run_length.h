// The run's length in optimizer steps, decided here and nowhere else (the Trainer gets the number).
#pragma once
#include <cstdint>

#include "core/config.h"

namespace kiln::train {

// train.max_steps when it is set (>= 0); else train.epochs passes over data.train (epoch_steps,
// counted by the stage's loader; -1 when train.epochs is unused); else Chinchilla-style:
// train.target_param_data_ratio x num_params tokens (the model's num_scaling_params: all of V1's
// parameters, nanochat's current model its matrices and head; nanochat's default ratio 20, now 12). A length taken from
// train.epochs is written into cfg as train.max_steps, so the run's checkpoints carry the number
// and a --resume reads it instead of counting the data again.
int64_t decide_run_steps(Config& cfg, int64_t num_params, int64_t epoch_steps);

}  // namespace kiln::train
