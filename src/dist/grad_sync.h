// GradSync — DDP for kiln (docs/architecture.md, "The parts": src/dist/): flat gradient buckets (~25 MB,
// params in reverse registration order, param.grad a view into its bucket), an all-reduce launched
// from an autograd post-hook as soon as a bucket's last gradient is accumulated (overlap with
// backward), nothing on non-final micro-steps, averaging, and a wait before the optimizer step.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "dist/comm.h"
#include "dist/zero1.h"

namespace kiln::dist {

// Usage, one optimizer step with `accum` micro-steps (see Note [GradSync protocol] in the .cpp):
//   GradSync sync(model->named_parameters(), comm);   // once, after the model is on its device
//   sync.zero_grad();                                 // instead of optimizer.zero_grad()
//   for (int m = 0; m < accum; ++m) {
//     if (m == accum - 1) sync.arm();                 // only the last backward communicates
//     (loss(m) / accum).backward();                   // grads SUM locally over micro-steps
//   }
//   sync.finish();                                    // every param.grad = mean over ranks
//   clip, optimizer.step();
// When the reductions run: from the hooks, as each bucket fills during backward (the default), or
// all after backward (for the overlap benchmark).
enum class Overlap { WithBackward, AfterBackward };

class GradSync {
 public:
  // Verifies that all ranks hold the same parameter shapes (error names the rank that differs).
  // Parameters with requires_grad=false are skipped. Collective: every rank constructs together.
  // ownership (ZeRO-1, dist/zero1.h), when sharded: each bucket holds one owner's parameters and
  // is reduced to that rank only, so after finish() only the grads of the parameters this rank
  // owns are the mean over ranks. Not sharded: all-reduce (DDP).
  GradSync(std::vector<torch::Tensor> params, Comm& comm, double bucket_mb = 25.0,
           Overlap overlap = Overlap::WithBackward, const Ownership& ownership = Ownership());
  // The same, with parameter names for the error messages (module->named_parameters()).
  GradSync(const torch::OrderedDict<std::string, torch::Tensor>& named_params, Comm& comm,
           double bucket_mb = 25.0, Overlap overlap = Overlap::WithBackward,
           const Ownership& ownership = Ownership());
  ~GradSync();  // removes the autograd hooks
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // Call before the backward of the last micro-step: its hooks then launch the reductions.
  void arm();
  // Call after that backward: waits for every bucket; afterwards each param.grad is the mean over
  // ranks. A parameter whose hook never fired is an error that names it.
  void finish();
  // Zeroes the buckets and points every param.grad at its bucket slot. optimizer.zero_grad()
  // works too: zero_grad(false) zeroes the slots in place; zero_grad() (set_to_none) makes the
  // first backward allocate fresh grads that the hooks copy back into the buckets (correct, one
  // extra copy per parameter per step).
  void zero_grad();

  int64_t num_buckets() const;
  // Parameter names (or "param[i]") in bucket b, in bucket order; for tests and logs.
  std::vector<std::string> bucket_params(int64_t b) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::dist
