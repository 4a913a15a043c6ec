// Test hook; see test_hooks.h. Read from the environment on every call (cheap, and tests can
// set it per process without any other plumbing).
#include "train/test_hooks.h"

#include <torch/torch.h>

#include <cstdlib>
#include <limits>
#include <string>

namespace kiln::train::hooks {

void maybe_poison_grads(int64_t step_1based, const std::vector<at::Tensor>& params) {
  const char* env = std::getenv("KILN_NAN_GRAD_STEP");
  if (!env || !*env || std::stoll(env) != step_1based) return;
  torch::NoGradGuard no_grad;
  for (const auto& p : params)
    if (p.grad().defined()) {
      p.grad().select(0, 0).fill_(std::numeric_limits<float>::quiet_NaN());  // a view: in place
      return;
    }
}

}  // namespace kiln::train::hooks
