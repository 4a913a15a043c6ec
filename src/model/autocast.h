// bf16 autocast around forward passes, as a scope guard: the Trainer's training and validation
// steps and ./eval's scoring forwards use the same one, so evaluation sees the numerics training did.
// On by default on CUDA; on CPU only when the config asks (train.dtype = bfloat16).
#pragma once
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <string>

namespace kiln::model {

// The autocast rule, decided here for training and evaluation alike: train.dtype "bfloat16" always,
// "auto" on CUDA only, "float32" never.
inline bool use_autocast(const std::string& dtype, const torch::Device& device) {
  return dtype == "bfloat16" || (dtype == "auto" && device.is_cuda());
}

class AutocastGuard {
 public:
  AutocastGuard(const torch::Device& d, bool on) : type_(d.type()), on_(on) {
    if (!on_) return;
    at::autocast::set_autocast_enabled(type_, true);
    at::autocast::set_autocast_dtype(type_, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(type_, false);
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType type_;
  bool on_;
};

}  // namespace kiln::model
