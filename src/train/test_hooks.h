// Test hooks for the fault-injection and NaN tests (tests/e2e/fault_injection.sh, nonfinite.sh):
// environment variables that make ./pretrain die at a named point of the checkpoint protocol or
// poison the gradients of one step. Unset (always, outside those tests) they cost one getenv.
#pragma once
#include <cstdint>
#include <vector>

namespace at {
class Tensor;
}

namespace kiln::train::hooks {

// KILN_FAULT=<point>[@<step>]: when `point` (and the step, if given) matches, print
// "[fault] <point> at step N" to stderr and _exit(86) at once, as a crash or SIGKILL would.
void fault_point(const char* point, int64_t step);

// KILN_NAN_GRAD_STEP=<k>: at optimizer step k (1-based, as logged) fill the first gradient with
// NaN after the gradient sync, so that the non-finite gradient check must catch it.
void maybe_poison_grads(int64_t step_1based, const std::vector<at::Tensor>& params);

}  // namespace kiln::train::hooks
