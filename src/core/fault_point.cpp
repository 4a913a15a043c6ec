// KILN_FAULT; see fault_point.h. Read from the environment on every call (cheap, and tests can
// set it per process without any other plumbing).
#include "core/fault_point.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace kiln::hooks {

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

}  // namespace kiln::hooks
