// Muon and AdamW as nanochat V1 uses them (ARCHITECTURE.md §5), plus the LR and momentum
// schedules. Each optimizer owns its state and saves/loads it as named tensors so a checkpoint
// resumes bit-exactly.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "model/safetensors.h"

namespace kiln::optim {

// Muon: Nesterov momentum, then 5 Newton-Schulz steps (3.4445, -4.7750, 2.0315) on the update
// (bf16 on CUDA, fp32 on CPU), scaled by lr * sqrt(max(1, rows/cols)).
class Muon {
 public:
  Muon(std::vector<torch::Tensor> params, double lr, double momentum = 0.95, int64_t ns_steps = 5);
  void step();
  void zero_grad();
  void set_lr(double lr);
  void set_momentum(double m);
  double lr() const;
  const std::vector<torch::Tensor>& params() const;
  // State as "<prefix><i>.momentum_buffer" tensors; load restores them exactly.
  kiln::model::NamedTensors state(const std::string& prefix = "muon.") const;
  void load_state(const std::map<std::string, torch::Tensor>& state, const std::string& prefix = "muon.");

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// AdamW with parameter groups (each with its own base lr), no fused kernels; bias-corrected.
class AdamW {
 public:
  struct Group {
    std::vector<torch::Tensor> params;
    double lr;
  };
  AdamW(std::vector<Group> groups, double beta1 = 0.8, double beta2 = 0.95, double eps = 1e-10,
        double weight_decay = 0.0);
  void step();
  void zero_grad();
  // Sets every group's lr to base_lr * multiplier.
  void set_lr_multiplier(double m);
  kiln::model::NamedTensors state(const std::string& prefix = "adamw.") const;
  void load_state(const std::map<std::string, torch::Tensor>& state, const std::string& prefix = "adamw.");

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// LR multiplier at `step` of `total`: linear warmup over warmup_ratio*total, 1.0, then linear to
// final_frac over the last warmdown_ratio*total steps (nanochat's get_lr_multiplier).
double lr_multiplier(int64_t step, int64_t total, double warmup_ratio, double warmdown_ratio, double final_frac);
// Muon momentum: linear from start to end over `warmup` steps (nanochat: 0.85 -> 0.95 over 300).
double muon_momentum(int64_t step, double start, double end, int64_t warmup);

}  // namespace kiln::optim
