// kiln::Error — the one exception type for mistakes a user can make (config, paths, data,
// checkpoints). The message says what was wrong and where (file, key, value); the hint, when
// given, says what to do. Programming errors use TORCH_CHECK / assert instead.
#pragma once
#include <stdexcept>
#include <string>

namespace kiln {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
  Error(const std::string& what, const std::string& hint)
      : std::runtime_error(what + "\n  hint: " + hint) {}
};

}  // namespace kiln
