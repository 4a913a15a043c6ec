// scaling_rules / resolve_scaling; see scaling.h.
#include "train/scaling.h"

#include <cmath>

#include "core/error.h"
#include "core/log.h"
#include "model/lm.h"

namespace kiln::train {

Scaling scaling_rules(const Config& cfg, int64_t scaling_params, int64_t ref_scaling_params) {
  Scaling s;
  const double ratio = cfg.train.target_param_data_ratio;
  s.target_tokens = std::floor(ratio * double(scaling_params));  // int(...) in base_train.py
  s.ref_tokens = ratio * double(ref_scaling_params);
  s.total_batch_size = cfg.train.total_batch_size;
  if (s.total_batch_size == -1) {
    const double predicted = double(kBatchRef) * std::pow(s.target_tokens / s.ref_tokens, 0.383);
    s.total_batch_size = int64_t(1) << int64_t(std::nearbyint(std::log2(predicted)));  // nearest power of 2
  }
  const double b_ratio = double(s.total_batch_size) / double(kBatchRef);
  s.batch_lr_scale = cfg.optim.batch_lr_scale >= 0 ? cfg.optim.batch_lr_scale : std::sqrt(b_ratio);
  s.weight_decay_scale = cfg.optim.weight_decay_scale >= 0 ? cfg.optim.weight_decay_scale
                                                           : std::sqrt(b_ratio) * (s.ref_tokens / s.target_tokens);
  return s;
}

int64_t reference_scaling_params(const Config& cfg, int64_t vocab_size) {
  ModelConfig m = cfg.model;
  m.depth = kDepthRef;
  m.width = m.n_head = m.n_kv_head = 0;  // nanochat's build_model_meta(12): aspect 64, head_dim 128, MHA
  return model::make_model(m, vocab_size, 0, torch::Device(torch::kMeta))->num_scaling_params();
}

bool needs_scaling(const Config& cfg) {
  return cfg.train.total_batch_size == -1 || cfg.optim.batch_lr_scale < 0 || cfg.optim.weight_decay_scale < 0;
}

void resolve_scaling(Config& cfg, int64_t scaling_params, int64_t ref_scaling_params, int world) {
  if (!needs_scaling(cfg)) return;
  if (cfg.train.target_param_data_ratio <= 0)
    throw Error(cfg.source + ": train.total_batch_size / optim.batch_lr_scale / optim.weight_decay_scale = -1 (auto) " +
                    "need train.target_param_data_ratio > 0 (the horizon D the rules scale with)",
                "set train.target_param_data_ratio (nanochat: 12), or give the three keys as numbers");
  const bool auto_batch = cfg.train.total_batch_size == -1;
  const Scaling s = scaling_rules(cfg, scaling_params, ref_scaling_params);
  log::info("[scaling] %lld scaling parameters, D = %.4g tokens (ratio %g); reference d%lld: %lld, D_ref = %.4g",
            (long long)scaling_params, s.target_tokens, cfg.train.target_param_data_ratio, (long long)kDepthRef,
            (long long)ref_scaling_params, s.ref_tokens);
  if (auto_batch)
    log::info("[scaling] train.total_batch_size = %lld tokens (2^19 x (D/D_ref)^0.383, nearest power of 2)",
              (long long)s.total_batch_size);
  if (cfg.optim.batch_lr_scale < 0)
    log::info("[scaling] optim.batch_lr_scale = %.6f (sqrt(B / 2^19))", s.batch_lr_scale);
  if (cfg.optim.weight_decay_scale < 0)
    log::info("[scaling] optim.weight_decay_scale = %.6f (sqrt(B / 2^19) x D_ref / D): Muon weight decay %.6f",
              s.weight_decay_scale, cfg.optim.weight_decay * s.weight_decay_scale);
  cfg.train.total_batch_size = s.total_batch_size;
  cfg.optim.batch_lr_scale = s.batch_lr_scale;
  cfg.optim.weight_decay_scale = s.weight_decay_scale;
  const int64_t micro = cfg.train.device_batch_size * cfg.model.seq_len * world;
  if (s.total_batch_size % micro != 0)
    throw Error(cfg.source + ": train.total_batch_size = -1 resolved to " + std::to_string(s.total_batch_size) +
                    " tokens, not a multiple of world * train.device_batch_size * model.seq_len = " +
                    std::to_string(micro),
                "set train.total_batch_size to a multiple of " + std::to_string(micro) +
                    " (or change train.device_batch_size)");
}

}  // namespace kiln::train
