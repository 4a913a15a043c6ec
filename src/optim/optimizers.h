// Muon and AdamW as nanochat V1 uses them, plus the LR and momentum
// schedules. Each optimizer owns its state and saves/loads it as named tensors so a checkpoint
// resumes bit-exactly.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/config.h"
#include "model/lm.h"
#include "model/safetensors.h"

namespace kiln::optim {

// What state() writes (see Note [Optimizer state by name] in the .cpp): the scalars every rank
// shares (lr, momentum, step counters), the tensors of the parameters this rank owns, both, or
// nothing. Each tensor of a checkpoint is written once: the shared scalars and, without ZeRO-1,
// every parameter's tensors by rank 0; under ZeRO-1 each owner writes its own parameters'.
enum class StateScope { All, Shared, Owned, None };

// ZeRO-1: a rank steps and keeps state only for the parameters this predicate accepts (by name).
using OwnerFilter = std::function<bool(const std::string& name)>;

// How Muon turns the momentum into an update. NewtonSchulz (nanochat V1): Nesterov momentum, then
// 5 Newton-Schulz steps (3.4445, -4.7750, 2.0315) (bf16 on CUDA, fp32 on CPU), scaled by
// lr * sqrt(max(1, rows/cols)). NorMuon (nanochat's current MuonAdamW, muon_adamw.h): Polar
// Express, NorMuon variance reduction (beta2) and cautious weight decay, same lr scaling.
enum class MuonMath { NewtonSchulz, NorMuon };

class Muon {
 public:
  // names: one per parameter (named_parameters() keys) for the state keys; empty: "0", "1", ...
  Muon(std::vector<torch::Tensor> params, double lr, double momentum = 0.95, int64_t ns_steps = 5,
       std::vector<std::string> names = {}, MuonMath math = MuonMath::NewtonSchulz, double beta2 = 0.9);
  void step();
  void zero_grad();
  void set_lr(double lr);
  void set_momentum(double m);
  void set_weight_decay(double wd);  // NorMuon only (cautious, scheduled by the trainer)
  double lr() const;
  double momentum() const;
  double weight_decay() const;
  int64_t steps() const;  // step() calls so far
  const std::vector<torch::Tensor>& params() const;
  const std::vector<std::string>& names() const;
  void set_owner_filter(const OwnerFilter& owns);
  // State as "<prefix><name>.momentum_buffer" tensors (NorMuon: and ".second_momentum_buffer") plus
  // lr, momentum, steps and num_params scalars (NorMuon: and weight_decay); load restores them
  // exactly (the owned parameters' tensors; the rest stay empty).
  kiln::model::NamedTensors state(const std::string& prefix = "muon.", StateScope scope = StateScope::All) const;
  void load_state(const std::map<std::string, torch::Tensor>& state, const std::string& prefix = "muon.");
  int64_t state_bytes() const;  // bytes of the per-parameter buffers held on this rank

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// How AdamW computes: Torch is torch.optim.AdamW's single-tensor path (double scalars; nanochat
// V1); Fused is nanochat's current adamw_step_fused (fp32 math and scalars, lerp'd second moment).
enum class AdamWMath { Torch, Fused };

// AdamW with parameter groups (each with its own base lr, optionally its own betas and weight
// decay); bias-corrected.
class AdamW {
 public:
  struct Group {
    std::vector<torch::Tensor> params;
    double lr;
    std::vector<std::string> names = {};  // per parameter, for the state keys; empty: positions
    double weight_decay = -1.0;           // < 0: the optimizer's weight_decay
    double beta1 = -1.0, beta2 = -1.0;    // < 0: the optimizer's
  };
  AdamW(std::vector<Group> groups, double beta1 = 0.8, double beta2 = 0.95, double eps = 1e-10,
        double weight_decay = 0.0, AdamWMath math = AdamWMath::Torch);
  void step();
  void zero_grad();
  // Sets every group's lr to base_lr * multiplier.
  void set_lr_multiplier(double m);
  double lr(size_t group) const;  // the group's current lr
  const std::vector<std::string>& names() const;  // per parameter, over the groups in order
  void set_owner_filter(const OwnerFilter& owns);
  // "<prefix><name>.{step,exp_avg,exp_avg_sq}" per parameter, plus the multiplier, each group's
  // lr and num_params.
  kiln::model::NamedTensors state(const std::string& prefix = "adamw.", StateScope scope = StateScope::All) const;
  void load_state(const std::map<std::string, torch::Tensor>& state, const std::string& prefix = "adamw.");
  int64_t state_bytes() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// LR multiplier at `step` of `total`: linear warmup over warmup_ratio*total, 1.0, then linear to
// final_frac over the last warmdown_ratio*total steps (nanochat's get_lr_multiplier).
double lr_multiplier(int64_t step, int64_t total, double warmup_ratio, double warmdown_ratio, double final_frac);
// The same with the warmup in steps (optim.warmup_steps; nanochat's current base_train.py: 40).
double lr_multiplier_steps(int64_t step, int64_t total, int64_t warmup, double warmdown_ratio, double final_frac);
// The multiplier a run applies: init_lr_frac * lr_multiplier(...) from the optim config (SFT:
// 0.02 x linear to 0; midtraining: constant, then linear to 0 over the last warmdown_ratio); the
// warmup is optim.warmup_steps when >= 0, else optim.warmup_ratio of the run.
double stage_lr_multiplier(int64_t step, int64_t total, const kiln::OptimConfig& o);
// Muon momentum: linear from start to end over `warmup` steps (nanochat: 0.85 -> 0.95 over 300).
double muon_momentum(int64_t step, double start, double end, int64_t warmup);
// The momentum a run applies: muon_momentum(...), and with optim.muon_momentum_final >= 0 (nanochat's
// current recipe: 0.85 -> 0.97 over 400 steps, 0.97 -> 0.90 over the LR warmdown) the warmdown too.
double muon_momentum_at(int64_t step, int64_t total, const kiln::OptimConfig& o);
// Muon's weight decay at `step`: weight_decay * weight_decay_scale, constant or (optim.
// weight_decay_schedule cosine, nanochat's get_weight_decay) times 0.5 * (1 + cos(pi * step / total)).
double muon_weight_decay_at(int64_t step, int64_t total, const kiln::OptimConfig& o);

// nanochat's width rule for the AdamW lrs: (width / 768)^-0.5 (d20: 0.7746).
double adamw_lr_scale(int64_t width);

// The optimizers of optim.recipe from a model's parameter groups (model::LM::param_groups).
// nanochat: Muon (matrix_lr) on the "matrix" role; AdamW with two groups, "unembedding"
// (unembedding_lr) then "embedding" (embedding_lr), both times adamw_lr_scale(width).
// adamw (GPT-2, nanoGPT): no Muon parameters; AdamW at optim.lr with two groups, every 2-D role
// (matrix, embedding, unembedding) with weight_decay, then "vector" (biases, norms) without.
// muon_adamw (nanochat's current MuonAdamW, gpt.py setup_optimizer): Muon with NorMuon math on
// "matrix" (lr matrix_lr x batch_lr_scale, cautious weight decay weight_decay x weight_decay_scale);
// fused AdamW groups "unembedding", "embedding", "value_embedding", "resid_lambda", "x0_lambda",
// "smear" with nanochat's lrs, betas and weight decays (kMuonAdamWRoles in the .cpp).
// A role the recipe has no rule for is an error.
struct Optimizers {
  Muon muon;
  AdamW adamw;
  bool adamw_recipe = false;  // groups: adamw (decay, no_decay) or Muon + AdamW (matrix, unembedding, embedding)
  std::string recipe = "";    // "muon_adamw": nanochat's current groups and schedules (else V1's)
  // lr multiplier for both and Muon's momentum at `step` of `total`, from the optim config.
  void set_schedule(int64_t step, int64_t total, const kiln::OptimConfig& o);
  void step();
  void zero_grad();
  // Both states in one map ("muon." and "adamw." prefixes), for one checkpoint file per rank.
  kiln::model::NamedTensors state(StateScope scope = StateScope::All) const;
  void load_state(const std::map<std::string, torch::Tensor>& state);
  // ZeRO-1: step only (and keep state only for) the parameters `owns` accepts.
  void set_owner_filter(const OwnerFilter& owns);
  // Whether load_state keeps the state tensor `key` (a name state() writes): the shared scalars
  // always, a parameter's tensors when this rank owns the parameter. ZeRO-1 resume reads only these.
  bool keeps_state(const std::string& key) const;
  int64_t state_bytes() const;  // optimizer state held on this rank

  OwnerFilter owns;  // set_owner_filter's; empty: every parameter
  // The current lr of each parameter group, named by role (TensorBoard, metrics.jsonl).
  std::vector<std::pair<std::string, double>> group_lrs() const;
  // nanochat2's roles stepped by AdamW groups 2, 3, ... (value_embedding, resid_lambda, x0_lambda,
  // smear; those the model has), in that order.
  std::vector<std::string> extra_roles;
};
Optimizers make_optimizers(const std::vector<kiln::model::ParamGroup>& groups, const kiln::OptimConfig& o,
                           int64_t width);

}  // namespace kiln::optim
