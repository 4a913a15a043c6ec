// The fuzz test's parts: targets (fuzz_targets.cpp, one per user-file parser), seeds of valid
// files (fuzz_seeds.cpp) and the driver (fuzz_main.cpp: a seeded mutator for a fixed count, or
// libFuzzer's entry point when built with -fsanitize=fuzzer).
#pragma once
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

namespace kiln::fuzz {

struct Target {
  const char* name;
  void (*run)(std::string_view input);  // may throw kiln::Error, nothing else
  uint64_t ci_count;                     // inputs per CI run (sized for ~30 s in all under ASan)
};
const std::vector<Target>& targets();

// Valid inputs for a target (mutation starts from them); `source_dir` holds configs/*.yaml.
std::vector<std::string> seeds(const std::string& target, const std::string& source_dir);

}  // namespace kiln::fuzz
