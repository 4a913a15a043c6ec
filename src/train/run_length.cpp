// decide_run_steps; see run_length.h.
#include "train/run_length.h"

#include <algorithm>

#include "core/log.h"

namespace kiln::train {

int64_t decide_run_steps(Config& cfg, int64_t num_params, int64_t epoch_steps) {
  if (cfg.train.max_steps >= 0) return cfg.train.max_steps;
  if (epoch_steps > 0) {
    cfg.train.max_steps = epoch_steps;
    log::info("[train] train.epochs = %g over data.train -> train.max_steps = %lld", cfg.train.epochs,
              (long long)cfg.train.max_steps);
    return epoch_steps;
  }
  const double tokens = cfg.train.target_param_data_ratio * static_cast<double>(num_params);
  return std::max<int64_t>(1, static_cast<int64_t>(tokens / static_cast<double>(cfg.train.total_batch_size)));
}

}  // namespace kiln::train
