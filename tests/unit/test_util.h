// Helpers shared by the unit tests: where the shared datasets are (KILN_DATA, else
// ../shared/data beside the checkout), the repository root, and a fresh temporary directory.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <unistd.h>

namespace kiln::test {

inline std::string source_dir() { return KILN_SOURCE_DIR; }

// The shared data folder, or "" when it is absent (callers GTEST_SKIP then).
inline std::string data_dir() {
  const char* env = std::getenv("KILN_DATA");
  std::string d = env && *env ? env : source_dir() + "/../shared/data";
  return std::filesystem::exists(d + "/tinyshakespeare/input.txt") ? d : "";
}

// A new empty directory under the system temp dir, named after the running test.
inline std::string temp_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  auto p = std::filesystem::temp_directory_path() /
           ("kiln_" + std::string(info->test_suite_name()) + "_" + info->name() + "_" +
            std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

}  // namespace kiln::test
