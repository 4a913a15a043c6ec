// Test hooks; see test_hooks.h. Read from the environment on every call (cheap, and tests can
// set them per process without any other plumbing).
#include "train/test_hooks.h"

#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

namespace kiln::train::hooks {

void fault_point(const char* point, int64_t step) {
  const char* env = std::getenv("KILN_FAULT");
  if (!env || !*env) return;
  const std::string spec(env);
  const auto at = spec.find('@');
  if (spec.substr(0, at) != point) return;
  if (at != std::string::npos && std::stoll(spec.substr(at + 1)) != step) return;
  fprintf(stderr, "[fault] %s at step %lld: exiting as a crash would\n", point, (long long)step);
  fflush(stderr);
  ::_exit(86);
}

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
