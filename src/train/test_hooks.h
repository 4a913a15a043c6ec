// Test hook for the NaN tests (tests/e2e/nonfinite.sh, nan_stop.sh): an environment variable that
// poisons the gradients of one step. Unset (always, outside those tests) it costs one getenv.
// (KILN_FAULT, the checkpoint protocol's hook, is core/fault_point.h.)
#pragma once
#include <cstdint>
#include <vector>

namespace at {
class Tensor;
}

namespace kiln::train::hooks {

// KILN_NAN_GRAD_STEP=<k>: at optimizer step k (1-based, as logged) fill the first gradient with
// NaN after the gradient sync, so that the non-finite gradient check must catch it.
void maybe_poison_grads(int64_t step_1based, const std::vector<at::Tensor>& params);

}  // namespace kiln::train::hooks
