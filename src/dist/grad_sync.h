// GradSync — DDP for kiln (ARCHITECTURE.md §4, STYLE.md §4): flat gradient buckets (~25 MB,
// params in reverse registration order, param.grad a view into its bucket), an all-reduce launched
// from an autograd post-hook as soon as a bucket's last gradient is accumulated (overlap with
// backward), nothing on non-final micro-steps, averaging, and a wait before the optimizer step.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "dist/comm.h"

namespace kiln::dist {

class GradSync {
 public:
  // Verifies that all ranks hold the same parameter shapes (error names the rank that differs).
  // overlap=false reduces all buckets after backward instead (for the overlap benchmark).
  GradSync(std::vector<torch::Tensor> params, Comm& comm, double bucket_mb = 25.0, bool overlap = true);
  ~GradSync();  // removes the autograd hooks

  // Call before the backward of the last micro-step: its hooks then launch the reductions.
  void arm();
  // Call after that backward: waits for every bucket; afterwards each param.grad is the mean over
  // ranks. A parameter whose hook never fired is an error that names it.
  void finish();

  int64_t num_buckets() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::dist
