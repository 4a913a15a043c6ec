// The fault-injection hook of the checkpoint tests (tests/e2e/fault_injection.sh, kill_anywhere.sh):
// KILN_FAULT makes a binary die at a named point of the checkpoint protocol. Unset (always, outside
// those tests) it costs one getenv. In core because ckpt/ (the protocol) and train/ both sit above.
#pragma once
#include <cstdint>

namespace kiln::hooks {

// KILN_FAULT=<point>[@<step>]: when `point` (and the step, if given) matches, print
// "[fault] <point> at step N" to stderr and _exit(86) at once, as a crash or SIGKILL would.
void fault_point(const char* point, int64_t step);

}  // namespace kiln::hooks
