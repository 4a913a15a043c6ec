// Helpers shared by the unit tests: where the shared datasets are (KILN_DATA, else
// ../shared/data beside the checkout), the repository root, a fresh temporary directory, the
// Python reference's availability, a scale-free tensor error, and a world-of-one MPI init.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <unistd.h>

#include "core/error.h"
#include "core/remove_tree.h"

namespace kiln::test {

inline std::string source_dir() { return KILN_SOURCE_DIR; }

// Under CI=true nothing may skip for want of data or tools (only for want of a GPU).
inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

// The shared data folder, or "" when it is absent (callers GTEST_SKIP then; under CI=true the
// test fails first).
inline std::string data_dir() {
  const char* env = std::getenv("KILN_DATA");
  std::string d = env && *env ? env : source_dir() + "/../shared/data";
  if (std::filesystem::exists(d + "/tinyshakespeare/input.txt")) return d;
  if (in_ci()) ADD_FAILURE() << "CI=true but the test data is missing at " << d << " (set KILN_DATA)";
  return "";
}

// The message of the kiln::Error that `fn` throws ("" if none).
template <class F>
std::string error_of(F fn) {
  try {
    fn();
  } catch (const kiln::Error& e) {
    return e.what();
  }
  return "";
}

// A new empty directory under the system temp dir, named after the running test.
inline std::string temp_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  auto p = std::filesystem::temp_directory_path() /
           ("kiln_" + std::string(info->test_suite_name()) + "_" + info->name() + "_" +
            std::to_string(::getpid()));
  kiln::remove_tree(p);
  std::filesystem::create_directories(p);
  return p.string();
}

// True when KILN_PYTHON has torch and safetensors (the parity references need both).
inline bool python_has_torch() {
  static const bool ok = std::system(KILN_PYTHON " -c 'import torch, safetensors' > /dev/null 2>&1") == 0;
  if (!ok && in_ci()) ADD_FAILURE() << "CI=true but " << KILN_PYTHON << " lacks torch/safetensors";
  return ok;
}

// max |a - b| / max |b|: one number per tensor that is scale-free and does not blow up on the
// near-zero entries an elementwise relative error would divide by.
inline double rel_err(const torch::Tensor& a, const torch::Tensor& b) {
  auto d = (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
  auto s = b.to(torch::kDouble).abs().max().item<double>();
  return s > 0 ? d / s : d;
}

// ||a - b|| / ||b|| (Frobenius): the error of a whole GEMM result or gradient, insensitive to
// single entries (for results of reduced precision: bf16, FP8).
inline double rel_fro(const torch::Tensor& a, const torch::Tensor& b) {
  auto bd = b.cpu().to(torch::kDouble);
  return ((a.cpu().to(torch::kDouble) - bd).norm() / bd.norm()).item<double>();
}

// dist::init as a singleton world (no mpirun), for tests of code that needs MPI initialised.
void init_world();

}  // namespace kiln::test
